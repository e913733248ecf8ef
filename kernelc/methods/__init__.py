"""Kernel methods on precomputed Gram matrices: gradient-flow / NNGP prediction, metrics, data.

Independent of the compiler: everything takes numpy arrays.
"""
from .data import Dataset, as_images, load_arrays, load_mnist
from .metrics import accuracy, mae, one_hot, rmse
from .predict import (ConjugateGradientRegressor, GaussianPosterior, GradientFlowPredictor,
                      predict)

__all__ = [
    "Dataset", "as_images", "load_arrays", "load_mnist",
    "accuracy", "mae", "one_hot", "rmse",
    "ConjugateGradientRegressor", "GaussianPosterior", "GradientFlowPredictor", "predict",
]
