"""What a platform charges: the platform file, the copy engines (CPU, multi-threaded, DMA), the CPU timeline."""
