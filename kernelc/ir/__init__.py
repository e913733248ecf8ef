"""The intermediate representation between the symbolic rules and the generated code: value
objects only (no dependencies on the other stages).

* :mod:`~kernelc.ir.plan`: storage layouts, kernel values and plan ops with their cost;
* :mod:`~kernelc.ir.laws`: the Gaussian laws of signals that the typing pass assigns;
* :mod:`~kernelc.ir.jax_printer`: sympy kernel maps printed as guarded array code (the helpers
  it calls are :mod:`kernelc.runtime.maps`).
"""
