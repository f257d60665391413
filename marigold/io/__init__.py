"""Files in and out: reading images, writing 16-bit PNG / EXR / npy (``images``); colour maps (``colorize``).
"""
