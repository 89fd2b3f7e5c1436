"""The desired state: a directory of agent files (or that directory at a git revision).

``loader.load`` / ``loader.load_files`` read files and modules (the only I/O of
this layer) and hand the bytes to ``caxton.validation``; ``model`` holds the
result (``DesiredState``) that the planner and the engine consume.
"""
