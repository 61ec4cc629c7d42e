"""Inputs: where files live and how they become canvases.

- :mod:`.locations`: :class:`~.locations.Place` (a path or URL with its storage options), listing
  and opening files on local disk or object storage;
- :mod:`.readers`: one file in, a numpy array out, by suffix;
- :mod:`.layouts`: which files are the inputs and which masks go with them (folder, PAIP, BTCV,
  list files);
- :mod:`.frames`: an input read whole into its 2-D frames (a volume's slices), masks checked;
- :mod:`.canvas`: a frame resampled to the canvas;
- :mod:`.sources`: region sources that give a canvas band by band (for the out-of-core path).
"""
