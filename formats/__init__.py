"""The apfcompile on-disk format (v1): spec, writer, reader, validation.

Depends on numpy, zarr and pyarrow only (never cv2 or torch), so a reader of compiled data needs
neither OpenCV nor the compiler. The format itself is specified in the shard-format issue and will
be written down in ``formats/FORMAT.md``; this package is its home.
"""

__all__: list[str] = []
