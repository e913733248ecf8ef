"""The front end: spec text -> AST -> layer graph -> typed graph."""
from .ast import Spec
from .infer import TypedGraph, check
from .parser import load_spec, parse_spec

__all__ = ["Spec", "TypedGraph", "check", "load_spec", "parse_spec"]
