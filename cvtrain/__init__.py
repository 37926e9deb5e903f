"""cvtrain: a config-driven training CLI for classification, segmentation and detection."""

__version__ = "0.1.0"
