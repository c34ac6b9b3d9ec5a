"""Architectures of the built-in teachers. Each takes raw [0, 1] images and normalises them itself.

The weights are committed beside this file as safetensors; tools/train_teachers.py is the script that trained them.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from edgedistill.students.layers import Normalize, conv_bn_relu

# Statistics of the whole Fashion-MNIST training set (60,000 images, pixel values /255).
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
DIGITS_MEAN, DIGITS_STD = (0.3051,), (0.3761,)


def fashion_cnn(width: int = 32) -> nn.Module:
    """VGG-style CNN for 1×28×28 input: 2×(conv,conv,pool) then conv, global pool, dropout, linear."""
    w = width
    return nn.Sequential(
        OrderedDict(
            normalize=Normalize(FASHION_MEAN, FASHION_STD, ndim=4),
            layer1=nn.Sequential(conv_bn_relu(1, w), conv_bn_relu(w, w), nn.MaxPool2d(2)),
            layer2=nn.Sequential(conv_bn_relu(w, 2 * w), conv_bn_relu(2 * w, 2 * w), nn.MaxPool2d(2)),
            layer3=nn.Sequential(conv_bn_relu(2 * w, 4 * w), conv_bn_relu(4 * w, 4 * w)),
            head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * w, 10)),
        )
    )


def digits_cnn(width: int = 32) -> nn.Module:
    """Small CNN for 1×8×8 digits."""
    w = width
    return nn.Sequential(
        OrderedDict(
            normalize=Normalize(DIGITS_MEAN, DIGITS_STD, ndim=4),
            layer1=nn.Sequential(conv_bn_relu(1, w), conv_bn_relu(w, w), nn.MaxPool2d(2)),
            layer2=nn.Sequential(conv_bn_relu(w, 2 * w), conv_bn_relu(2 * w, 2 * w)),
            head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(2 * w, 10)),
        )
    )
