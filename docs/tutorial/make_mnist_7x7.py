"""How docs/tutorial/mnist_7x7.npz was made (the tutorial's data; you do not need to run this).

From the official MNIST test set (10,000 digits; LeCun, Cortes & Burges, CC BY-SA 3.0) split
8,000 / 2,000 as in the project's shared data folder: the first 1,000 training and 200 test
digits, each centre-cropped to 21×21 and 3×3 average-pooled to 7×7, stored as uint8 (0–255):

    python docs/tutorial/make_mnist_7x7.py PATH/TO/mnist_test10k.npz
"""
import sys

import numpy as np


def to_7x7(x):
    """(N, 28, 28) uint8 -> (N, 7, 7) uint8: centre crop rows/columns 3..23, 3×3 means."""
    crop = x.reshape(len(x), 28, 28)[:, 3:24, 3:24].astype(np.float64)
    return np.rint(crop.reshape(len(x), 7, 3, 7, 3).mean(axis=(2, 4))).astype(np.uint8)


def main(path):
    d = np.load(path)
    np.savez_compressed("docs/tutorial/mnist_7x7.npz",
                        x_train=to_7x7(d["x_train"][:1000]), y_train=d["y_train"][:1000],
                        x_test=to_7x7(d["x_test"][:200]), y_test=d["y_test"][:200])


if __name__ == "__main__":
    main(sys.argv[1])
