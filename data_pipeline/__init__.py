"""Offline dataset builders and readers (may use RDKit, pandas and tblite; no TensorFlow)."""
