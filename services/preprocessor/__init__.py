"""audio-preprocessor: denoising in front of speech recognition."""
