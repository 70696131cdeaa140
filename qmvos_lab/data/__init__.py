"""Data: label-map I/O, dataset readers, the generated video set, training clips."""
