"""Fits of a platform's free parameters to published tables or host probes, and the prediction intervals they allow."""
