using System.Globalization;

namespace BitNet.Inference.Gguf;

/// <summary>GGUF metadata value type ids (spec §1.1).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
}

/// <summary>
/// One metadata value. Scalars are held boxed as their exact .NET type (byte, sbyte, ushort, short,
/// uint, int, float, bool, string, ulong, long, double); arrays as a typed .NET array of the
/// element type (string[] for strings). Create values with the <c>From</c> overloads.
/// </summary>
public sealed class GgufValue
{
    private object? _value;   // null only for a string array not decoded yet (Utf8Strings)

    private GgufValue(GgufValueType type, GgufValueType elementType, object value)
    {
        Type = type;
        ElementType = elementType;
        _value = value;
    }

    /// <summary>A string array read from a file, decoded into strings on first use of <see cref="Value"/>.</summary>
    internal GgufValue(Utf8StringArray strings)
    {
        Type = GgufValueType.Array;
        ElementType = GgufValueType.String;
        Utf8Strings = strings;
    }

    public GgufValueType Type { get; }
    /// <summary>The element type of an array (equal to <see cref="Type"/> for scalars).</summary>
    public GgufValueType ElementType { get; }

    public object Value
    {
        get
        {
            if (Volatile.Read(ref _value) is { } value) return value;
            lock (Utf8Strings!)   // one decoding, whichever thread asks first
                return _value ??= Utf8Strings.ToArray();
        }
    }

    /// <summary>A long string array still undecoded in its file (see <see cref="Utf8StringArray"/>), else null.</summary>
    public Utf8StringArray? Utf8Strings { get; }

    public bool IsArray => Type == GgufValueType.Array;
    public int ArrayLength => !IsArray ? 0 : Utf8Strings?.Count ?? ((System.Array)Value).Length;

    /// <summary>The type as the GGUF tools print it: "u32", "str", "arr[str]".</summary>
    public string TypeName => IsArray ? $"arr[{ShortName(ElementType)}]" : ShortName(Type);

    public static GgufValue From(byte v) => new(GgufValueType.UInt8, GgufValueType.UInt8, v);
    public static GgufValue From(sbyte v) => new(GgufValueType.Int8, GgufValueType.Int8, v);
    public static GgufValue From(ushort v) => new(GgufValueType.UInt16, GgufValueType.UInt16, v);
    public static GgufValue From(short v) => new(GgufValueType.Int16, GgufValueType.Int16, v);
    public static GgufValue From(uint v) => new(GgufValueType.UInt32, GgufValueType.UInt32, v);
    public static GgufValue From(int v) => new(GgufValueType.Int32, GgufValueType.Int32, v);
    public static GgufValue From(float v) => new(GgufValueType.Float32, GgufValueType.Float32, v);
    public static GgufValue From(bool v) => new(GgufValueType.Bool, GgufValueType.Bool, v);
    public static GgufValue From(string v) => new(GgufValueType.String, GgufValueType.String, v ?? throw new ArgumentNullException(nameof(v)));
    public static GgufValue From(ulong v) => new(GgufValueType.UInt64, GgufValueType.UInt64, v);
    public static GgufValue From(long v) => new(GgufValueType.Int64, GgufValueType.Int64, v);
    public static GgufValue From(double v) => new(GgufValueType.Float64, GgufValueType.Float64, v);

    public static GgufValue From(byte[] v) => Array(GgufValueType.UInt8, v);
    public static GgufValue From(sbyte[] v) => Array(GgufValueType.Int8, v);
    public static GgufValue From(ushort[] v) => Array(GgufValueType.UInt16, v);
    public static GgufValue From(short[] v) => Array(GgufValueType.Int16, v);
    public static GgufValue From(uint[] v) => Array(GgufValueType.UInt32, v);
    public static GgufValue From(int[] v) => Array(GgufValueType.Int32, v);
    public static GgufValue From(float[] v) => Array(GgufValueType.Float32, v);
    public static GgufValue From(bool[] v) => Array(GgufValueType.Bool, v);
    public static GgufValue From(string[] v) => Array(GgufValueType.String, v);
    public static GgufValue From(ulong[] v) => Array(GgufValueType.UInt64, v);
    public static GgufValue From(long[] v) => Array(GgufValueType.Int64, v);
    public static GgufValue From(double[] v) => Array(GgufValueType.Float64, v);

    private static GgufValue Array(GgufValueType elementType, System.Array values) =>
        new(GgufValueType.Array, elementType, values ?? throw new ArgumentNullException(nameof(values)));

    /// <summary>The value as a long if it is a scalar of any integer type that fits.</summary>
    public bool TryGetInteger(out long value)
    {
        switch (Value)
        {
            case byte v: value = v; return true;
            case sbyte v: value = v; return true;
            case ushort v: value = v; return true;
            case short v: value = v; return true;
            case uint v: value = v; return true;
            case int v: value = v; return true;
            case long v: value = v; return true;
            case ulong v when v <= long.MaxValue: value = (long)v; return true;
            default: value = 0; return false;
        }
    }

    /// <summary>The value as a float if it is a Float32 or Float64 scalar.</summary>
    public bool TryGetFloat(out float value)
    {
        switch (Value)
        {
            case float v: value = v; return true;
            case double v: value = (float)v; return true;
            default: value = 0; return false;
        }
    }

    /// <summary>Short human-readable form; arrays longer than <paramref name="maxItems"/> are summarized.</summary>
    public string ToDisplayString(int maxItems = 8, int maxStringLength = 120)
    {
        if (!IsArray) return Scalar(Value, maxStringLength);
        var array = (System.Array)Value;
        var parts = new List<string>();
        for (int i = 0; i < Math.Min(array.Length, maxItems); i++)
            parts.Add(Scalar(array.GetValue(i)!, 40));
        string more = array.Length > maxItems ? $", … ({array.Length} items)" : "";
        return $"[{string.Join(", ", parts)}{more}]";
    }

    public override string ToString() => ToDisplayString();

    private static string Scalar(object v, int maxStringLength) => v switch
    {
        string s => Quote(s.Length > maxStringLength ? s[..maxStringLength] + "…" : s),
        bool b => b ? "true" : "false",
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    private static string Quote(string s) =>
        "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n").Replace("\r", "\\r").Replace("\t", "\\t") + "\"";

    internal static string ShortName(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 => "u8",
        GgufValueType.Int8 => "i8",
        GgufValueType.UInt16 => "u16",
        GgufValueType.Int16 => "i16",
        GgufValueType.UInt32 => "u32",
        GgufValueType.Int32 => "i32",
        GgufValueType.Float32 => "f32",
        GgufValueType.Bool => "bool",
        GgufValueType.String => "str",
        GgufValueType.Array => "arr",
        GgufValueType.UInt64 => "u64",
        GgufValueType.Int64 => "i64",
        GgufValueType.Float64 => "f64",
        _ => $"type {(uint)type}",
    };

    /// <summary>Bytes one element of a fixed-size type takes (strings: the 8-byte minimum, the length prefix).</summary>
    internal static int MinimumSize(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
        GgufValueType.Array => 12,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    internal static bool IsDefined(uint type) => type <= (uint)GgufValueType.Float64;
}
