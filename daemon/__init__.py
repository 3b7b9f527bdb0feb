"""digitd runtime: features, audio I/O, the TFLite classifier and the `digitd` command.

Nothing here imports TensorFlow or librosa.
"""
