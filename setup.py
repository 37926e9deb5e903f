"""The optional C extension `cvtrain._jpeg_region` (region decoding with the system's libjpeg-turbo); everything
else is in pyproject.toml. Without a compiler or libjpeg's headers the build goes on without it and cvtrain
decodes whole JPEGs through simplejpeg (cvtrain/data/decoding/jpeg.py)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "cvtrain._jpeg_region",
            sources=["cvtrain/_jpeg_region.c"],
            libraries=["jpeg"],
            optional=True,
        )
    ]
)
