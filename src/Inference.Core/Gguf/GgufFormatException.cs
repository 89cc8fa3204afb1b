namespace BitNet.Inference.Gguf;

/// <summary>
/// A GGUF file (or the model in it) is malformed or unsupported. The one exception family every
/// loader error belongs to: the message names what was being read, where, and what was expected.
/// Model-level errors derive from it (<c>BitNet.Inference.Model.ModelFormatException</c>).
/// (It derives from IOException because System.IO.InvalidDataException is sealed.)
/// Messages quote names and strings from the file, so control characters in them are escaped here,
/// and a message made long by them is shortened in the middle.
/// </summary>
public class GgufFormatException : IOException
{
    public GgufFormatException(string message) : base(PrintableText.EscapeMessage(message)) { }
    public GgufFormatException(string message, Exception inner) : base(PrintableText.EscapeMessage(message), inner) { }
}
