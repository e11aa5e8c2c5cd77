"""The depth encodings and kinds that ``perceptok.io`` reads (see ``depth_files``)."""

DEPTH_ENCODINGS = ("uint8", "uint16", "sun3d_bitshift", "kinect_raw_disparity", "float")
DEPTH_KINDS = ("metric", "disparity", "relative_inverse")
