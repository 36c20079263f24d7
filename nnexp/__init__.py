"""nnexp: experiments on how deep feed-forward networks train.

Write a YAML config, then ``nnexp train`` it on Fashion-MNIST, ``nnexp compare``
it across activations and seeds, and ``nnexp summary`` the model or the results.
Importing this package never imports TensorFlow.
"""

__version__ = "0.1.0"
