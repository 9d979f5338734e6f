"""Blender (bpy) renderer of CLEVR-DS scenes; the only package that imports bpy."""
