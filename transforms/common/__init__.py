"""Helpers shared by several stages: chunks, sides, images, text, content ids, devices, rejects, registries."""
