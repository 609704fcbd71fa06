"""RIT-Net eye segmentation (acceptance test 2): what is specific to RITnet; see docs/ritnet.md."""
