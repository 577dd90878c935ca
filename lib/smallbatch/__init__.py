"""smallbatch: an interactive, reproducible study of batch size and learning rate in SGD.

Reproduces and extends Masters and Luschi (2018), "Revisiting Small Batch Training for Deep
Neural Networks". Modules: data (data sets as tensors), models, train (one run), results
(the store), presets (the smoke / scaled / full scales), figures, book (the build), cli.
"""

__version__ = "0.1.0"
