"""ablate: which part of a recurrent cell matters? Ablation studies on one configurable cell."""

__version__ = "0.1.0"
