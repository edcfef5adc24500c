"""churnml: point-in-time churn prediction with explanations a retention team can act on."""

__version__ = "0.1.0"
