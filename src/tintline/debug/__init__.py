"""The method's debugging tools as commands (``tintline debug ...``).

* :mod:`.overfit`: train on a handful of images, no augmentation, no hints, until the reconstruction loss is near
  zero; a diagnosis when it does not fall;
* :mod:`.lrfind`: the learning-rate range test (exponential sweep, smoothed loss, steepest descent).
"""
