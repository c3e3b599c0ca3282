"""Measuring and improving retrieval: metrics, labelled queries, evaluate/calibrate, tune, adapt."""
