using BitNet.Inference.Gguf;

namespace BitNet.Inference.Model;

/// <summary>
/// The GGUF file is well formed but does not hold a model this engine can run (wrong architecture,
/// missing or mis-shaped tensor, inconsistent hyperparameters). Part of the
/// <see cref="GgufFormatException"/> family, so callers catch one type for every bad model file.
/// </summary>
public class ModelFormatException(string message) : GgufFormatException(message);
