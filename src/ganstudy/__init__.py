"""ganstudy: reproducible GAN studies."""
