"""What the served models know and how to call them: the one place producer, worker and
training agree on (taxonomy, palette, size chart, measurement ranges, tensor interface).

Kept free of torch so light processes (producer, worker) can import it.
"""
