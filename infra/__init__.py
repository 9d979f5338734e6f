"""Infrastructure shared by every package: one-line errors, atomic writes, folder locks, path
confinement, a bounded JSON reader and the Ray connection. Imports neither bpy nor torch, and ray
only inside functions; the dataset, renderer, DetailCLIP and benchmark packages build on it."""
