"""Bridges from scorefusion to other libraries' diffusion models.

Each integration is a separate module that imports its library on import, so
``import scorefusion`` never pulls them in:

``scorefusion.integrations.diffusers``
    ScoreFusion for Hugging Face ``diffusers`` pipelines: :class:`FusedUNet`
    (sample the KL barycenter of K UNets that share a scheduler) and the
    adapters :class:`DDPMScheduleSDE` / :class:`DiffusersScore` that let
    :func:`scorefusion.fusion.fit_weights` learn the weights for them.
    Needs the extra: ``pip install scorefusion[diffusers]``.
"""
