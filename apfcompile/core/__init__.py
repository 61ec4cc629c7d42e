"""The core: one canvas in, one adaptive patch sequence out. Pure numpy/OpenCV on arrays; knows
nothing of files, layouts or datasets (it imports nothing from :mod:`apfcompile.inputs` or
:mod:`apfcompile.build`).

- :mod:`.edges`: grey reduction, intensity window, blur, Canny, edge-count grids;
- :mod:`.pyramid`: exact block-sum pyramids; :mod:`.morton`: Z-order keys;
- :mod:`.forest`: the quadtree forest (greedy and threshold policies) in Z-order;
- :mod:`.patches`: leaves -> p x p patches (area / nearest; masks by mode / nearest);
- :mod:`.reconstruct`: patches -> full-size canvases, Dice, the reconstruction ceiling;
- :mod:`.sequence`: pad or drop to a fixed length;
- :mod:`.patchify`: all of the above for one in-memory image;
- :mod:`.out_of_core`: the same for a canvas read band by band (gigapixel slides);
- :mod:`.resample`: image and mask resampling, identical whole or band by band.
"""
