using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace BitNet.Inference.Kernels;

/// <summary>
/// Computes dst[r − rowStart] = Σ_k W[r, k] · x[k] for rows [rowStart, rowStart + rowCount) of a
/// row-major F16 matrix (the tied LM head). <paramref name="x"/> holds the input, already rounded
/// to F16 values (spec §5.5), in F32.
/// </summary>
public delegate void F16DotRowsKernel(
    ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst);

/// <summary>
/// LM-head rows for several tokens at once: x holds <c>tokens</c> inputs of <c>columns</c> values; token t's
/// result for row rowStart + r goes to dst[t · dstStride + r]. Each result equals the single-token
/// kernel's for that token, bit for bit; the weights are read and widened once for all the tokens.
/// </summary>
public delegate void F16DotRowsTokensKernel(
    ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int tokens, int rowStart, int rowCount, Span<float> dst, int dstStride);

/// <summary>
/// F16 → F32 without F16C: .NET 10 exposes no vcvtph2ps intrinsic, so the conversion is done with
/// integer ops that every vector ISA has.
///
/// The trick: sign-extend the 16 bits to 32, shift left by 13 and keep the sign and the 15
/// exponent/mantissa bits (mask 0x8FFFE000). Read as a float, that is the half's value scaled by
/// 2^−112 (its 5-bit exponent now sits in the low bits of the 8-bit field); multiplying by 2^112
/// restores it exactly, subnormal halves included (they become float subnormals first, and the
/// multiplication by a power of two is exact). Only Inf/NaN (exponent 31) need a fix-up.
///
/// In the LM-head dot product even the multiplication disappears: Σ w·x = Σ (w·2^−112)·(x·2^112),
/// so x is scaled once per call and each weight costs widen + shift + and + FMA. Every product is
/// the same real number as w·x, so the FMA results are the ones an exact conversion would give.
/// |x| ≤ 65504 (an F16 value) keeps x·2^112 below float max.
/// </summary>
[SkipLocalsInit]   // the kernels' stack buffers are written in full before they are read
public static partial class F16
{
    private const int BodyMask = unchecked((int)0x8FFFE000);
    private static readonly float TwoPow112 = BitConverter.Int32BitsToSingle((127 + 112) << 23);

    /// <summary>Exact F16 → F32 of a span (Inf and NaN included), vectorised.</summary>
    public static void ConvertToSingle(ReadOnlySpan<Half> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException("destination is shorter than the source", nameof(destination));
        ReadOnlySpan<short> bits = MemoryMarshal.Cast<Half, short>(source);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 8 <= bits.Length; i += 8)
            {
                Vector256<int> x = Vector256.WidenLower(Vector256.Create(Vector128.Create(bits.Slice(i, 8)), Vector128<short>.Zero));
                Convert(x).CopyTo(destination.Slice(i, 8));
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; i + 4 <= bits.Length; i += 4)
            {
                Vector128<int> x = Vector128.WidenLower(Vector128.Create(Vector64.Create(bits.Slice(i, 4)), Vector64<short>.Zero));
                Convert(x).CopyTo(destination.Slice(i, 4));
            }
        }
        for (; i < bits.Length; i++)
            destination[i] = (float)source[i];
    }

    /// <summary>The mask that keeps a half's sign, exponent and mantissa after the widen and the shift by 13.</summary>
    public const int ScaledValueMask = BodyMask;

    /// <summary>2^112: <see cref="ToScaledValues"/> returns halves scaled by its inverse.</summary>
    public static float ScaledValueFactor => TwoPow112;

    /// <summary>
    /// h · 2^−112 for every finite half h, exactly (the integer widen, shift and mask described above,
    /// without the multiplication and the Inf/NaN fix-up): cheaper than <see cref="ConvertToSingle"/>
    /// when the other operand of a product can carry the 2^112 instead (see <see cref="ScaledValueFactor"/>);
    /// a product with that operand is then the same real number as with the exact value. Inf and NaN
    /// halves come out as large finite values, so callers use this only where those cannot occur or
    /// would be meaningless anyway.
    /// </summary>
    public static void ToScaledValues(ReadOnlySpan<Half> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException("destination is shorter than the source", nameof(destination));
        ReadOnlySpan<short> bits = MemoryMarshal.Cast<Half, short>(source);
        Span<int> body = MemoryMarshal.Cast<float, int>(destination);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= bits.Length; i += 8)
                ((Vector256.WidenLower(Vector256.Create(Vector128.Create(bits.Slice(i, 8)), Vector128<short>.Zero)) << 13) & Vector256.Create(BodyMask))
                    .CopyTo(body.Slice(i, 8));
        else if (Vector128.IsHardwareAccelerated)
            for (; i + 4 <= bits.Length; i += 4)
                ((Vector128.WidenLower(Vector128.Create(Vector64.Create(bits.Slice(i, 4)), Vector64<short>.Zero)) << 13) & Vector128.Create(BodyMask))
                    .CopyTo(body.Slice(i, 4));
        for (; i < bits.Length; i++)
            body[i] = (bits[i] << 13) & BodyMask;
    }

    /// <summary>
    /// Exact F32 → F16 (round to nearest, ties to even, like the (Half) cast) of a span, vectorised.
    ///
    /// For a float whose magnitude bits a lie in the half's normal range, the half is
    /// (a − 112·2^23 + 0xFFF + lsb) >> 13 with lsb the bit that becomes the half's last mantissa bit:
    /// adding 0xFFF + lsb before dropping 13 bits is round-half-to-even, and a carry out of the
    /// mantissa correctly bumps the exponent (up to 0x7C00, infinity, for 65520 and above).
    /// Below 2^−14 the half is subnormal with a fixed step of 2^−24, the ulp of floats in [0.5, 1):
    /// so (bits of (|x| + 0.5f)) − bits of 0.5f is the rounded subnormal (the float addition rounds to
    /// nearest even at exactly that step), 0x0400 included when it rounds up to the smallest normal.
    /// Chunks holding an infinity or NaN take the scalar cast, which keeps NaN payloads.
    /// </summary>
    public static void ConvertToHalf(ReadOnlySpan<float> source, Span<Half> destination)
    {
        if (destination.Length < source.Length)
            throw new ArgumentException("destination is shorter than the source", nameof(destination));
        ReadOnlySpan<int> bits = MemoryMarshal.Cast<float, int>(source);
        Span<short> halves = MemoryMarshal.Cast<Half, short>(destination);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 16 <= bits.Length; i += 16)
            {
                Vector256<int> a = Vector256.Create(bits.Slice(i, 8)), b = Vector256.Create(bits.Slice(i + 8, 8));
                // Infinities and NaNs take the cast (each vector on its own: or-ing the two would merge the
                // exponents of 1.5 and 2.5 into all ones).
                var exponent = Vector256.Create(0x7F800000);
                if (Vector256.EqualsAny(a & exponent, exponent) || Vector256.EqualsAny(b & exponent, exponent))
                {
                    for (int k = i; k < i + 16; k++) destination[k] = (Half)source[k];
                    continue;
                }
                Vector256.Narrow(ToHalfBits(a), ToHalfBits(b)).CopyTo(halves.Slice(i, 16));
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; i + 8 <= bits.Length; i += 8)
            {
                Vector128<int> a = Vector128.Create(bits.Slice(i, 4)), b = Vector128.Create(bits.Slice(i + 4, 4));
                var exponent = Vector128.Create(0x7F800000);
                if (Vector128.EqualsAny(a & exponent, exponent) || Vector128.EqualsAny(b & exponent, exponent))
                {
                    for (int k = i; k < i + 8; k++) destination[k] = (Half)source[k];
                    continue;
                }
                Vector128.Narrow(ToHalfBits(a), ToHalfBits(b)).CopyTo(halves.Slice(i, 8));
            }
        }
        // A short tail (a head's soft-max of 150 positions leaves 6) through one zero-padded chunk of 16,
        // which either vector loop takes whole: the scalar cast costs more than the chunk.
        int rest = bits.Length - i;
        if (rest > 0 && Vector128.IsHardwareAccelerated)
        {
            Span<float> padded = stackalloc float[16];
            padded.Clear();
            source[i..].CopyTo(padded);
            Span<Half> converted = stackalloc Half[16];
            ConvertToHalf(padded, converted);
            converted[..rest].CopyTo(destination[i..]);
            return;
        }
        for (; i < bits.Length; i++)
            destination[i] = (Half)source[i];
    }

    /// <summary>x ← (float)(Half)x for every element: the value an F16 store and load would give.</summary>
    public static void RoundThroughHalf(Span<float> values)
    {
        Span<Half> chunk = stackalloc Half[256];
        for (int i = 0; i < values.Length; i += chunk.Length)
        {
            Span<float> part = values.Slice(i, Math.Min(chunk.Length, values.Length - i));
            ConvertToHalf(part, chunk);
            ConvertToSingle(chunk[..part.Length], part);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> ToHalfBits(Vector256<int> f)
    {
        Vector256<int> sign = (f >>> 16) & Vector256.Create(0x8000);
        Vector256<int> a = f & Vector256.Create(0x7FFFFFFF);
        Vector256<int> lsb = (a >>> 13) & Vector256<int>.One;
        Vector256<int> normal = Vector256.Min((a - Vector256.Create(112 << 23) + Vector256.Create(0xFFF) + lsb) >>> 13, Vector256.Create(0x7C00));
        Vector256<int> subnormal = (a.AsSingle() + Vector256.Create(0.5f)).AsInt32() - Vector256.Create(0x3F000000);
        return sign | Vector256.ConditionalSelect(Vector256.LessThan(a, Vector256.Create(0x38800000)), subnormal, normal);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> ToHalfBits(Vector128<int> f)
    {
        Vector128<int> sign = (f >>> 16) & Vector128.Create(0x8000);
        Vector128<int> a = f & Vector128.Create(0x7FFFFFFF);
        Vector128<int> lsb = (a >>> 13) & Vector128<int>.One;
        Vector128<int> normal = Vector128.Min((a - Vector128.Create(112 << 23) + Vector128.Create(0xFFF) + lsb) >>> 13, Vector128.Create(0x7C00));
        Vector128<int> subnormal = (a.AsSingle() + Vector128.Create(0.5f)).AsInt32() - Vector128.Create(0x3F000000);
        return sign | Vector128.ConditionalSelect(Vector128.LessThan(a, Vector128.Create(0x38800000)), subnormal, normal);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Convert(Vector256<int> signExtended)
    {
        Vector256<int> body = (signExtended << 13) & Vector256.Create(BodyMask);
        Vector256<float> value = body.AsSingle() * Vector256.Create(TwoPow112);
        // Exponent 31 (Inf/NaN): force the float exponent to 255, keeping the payload.
        Vector256<int> special = Vector256.GreaterThanOrEqual(body & Vector256.Create(0x0FFFE000), Vector256.Create(0x0F800000));
        return (value.AsInt32() | (special & Vector256.Create(0x7F800000))).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Convert(Vector128<int> signExtended)
    {
        Vector128<int> body = (signExtended << 13) & Vector128.Create(BodyMask);
        Vector128<float> value = body.AsSingle() * Vector128.Create(TwoPow112);
        Vector128<int> special = Vector128.GreaterThanOrEqual(body & Vector128.Create(0x0FFFE000), Vector128.Create(0x0F800000));
        return (value.AsInt32() | (special & Vector128.Create(0x7F800000))).AsSingle();
    }

    /// <summary>Reference LM-head rows: (float)w · x summed left to right in float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsScalar(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        for (int r = 0; r < rowCount; r++)
        {
            ReadOnlySpan<Half> row = matrix.Slice((rowStart + r) * columns, columns);
            float sum = 0;
            for (int k = 0; k < columns; k++)
                sum += (float)row[k] * x[k];
            dst[r] = sum;
        }
    }

    /// <summary>Per-thread scaled inputs of the several-token kernels (grown on demand, then reused), pinned so
    /// their start can be 64-byte aligned: a 512-bit input load that straddles two cache lines costs two loads.</summary>
    [ThreadStatic] private static float[]? _scaledTokens;

    /// <summary>Per-thread copy of a token group's scaled inputs for <see cref="AccumulatePair{TCount}"/>, interleaved
    /// by 8 columns (token 0's columns k … k + 7, token 1's, …), 64-byte aligned.</summary>
    [ThreadStatic] private static float[]? _interleavedTokens;

    /// <summary>Rows per tile of the several-token kernels: 80 KB of F16 at 2560 columns, inside L2 while every
    /// token group streams past it.</summary>
    private const int TokenTileRows = 16;

    /// <summary>
    /// Scales every token's input by 2^112 into contiguous slots of the per-thread buffer and lists the tokens
    /// that could be scaled; the others get the reference result here and now. Returns the scaled inputs, which
    /// start on a 64-byte boundary.
    /// </summary>
    private static unsafe Span<float> ScaleTokens(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int tokens, int rowStart, int rowCount,
        Span<float> dst, int dstStride, Span<int> vector, out int vectorTokens)
    {
        if (tokens < 1 || x.Length < (long)tokens * columns)
            throw new ArgumentException($"{tokens} tokens need {(long)tokens * columns} inputs, got {x.Length}", nameof(x));
        if (dstStride < rowCount || dst.Length < (long)(tokens - 1) * dstStride + rowCount)
            throw new ArgumentException($"{tokens} × {rowCount} results do not fit the destination at stride {dstStride}", nameof(dst));
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        Span<float> scaled = Aligned64(ref _scaledTokens, tokens * columns);
        vectorTokens = 0;
        for (int t = 0; t < tokens; t++)
        {
            if (ScaleBy2Pow112(x.Slice(t * columns, columns), scaled.Slice(vectorTokens * columns, columns)))
                vector[vectorTokens++] = t;
            else
                DotRowsScalar(matrix, columns, x.Slice(t * columns, columns), rowStart, rowCount, dst.Slice(t * dstStride, rowCount));
        }
        return scaled;
    }

    /// <summary><paramref name="length"/> floats from the first 64-byte boundary of a per-thread buffer, grown on demand,
    /// then reused; pinned, so the boundary stays where it is.</summary>
    private static unsafe Span<float> Aligned64(ref float[]? buffer, int length)
    {
        float[] array = buffer is { } reused && reused.Length >= length + 15
            ? reused : (buffer = GC.AllocateUninitializedArray<float>(length + 15, pinned: true));
        int skip = (int)((64 - ((nint)Unsafe.AsPointer(ref array[0]) & 63)) & 63) / sizeof(float);
        return array.AsSpan(skip, length);
    }

    /// <summary>A token count fixed at compile time: each instantiation of a several-token loop keeps exactly
    /// that many tokens' accumulators in registers (the tests on Count fold away).</summary>
    private interface ITokenCount { static abstract int Count { get; } }
    private readonly struct OneToken : ITokenCount { public static int Count => 1; }
    private readonly struct TwoTokens : ITokenCount { public static int Count => 2; }
    private readonly struct ThreeTokens : ITokenCount { public static int Count => 3; }
    private readonly struct FourTokens : ITokenCount { public static int Count => 4; }

    /// <summary><see cref="ScaledValues256"/> for sixteen halves (AVX-512F), with <paramref name="mask"/> =
    /// Vector512.Create(<see cref="ScaledValueMask"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe Vector512<float> ScaledValues512(short* halves, Vector512<int> mask) =>
        ScaledValues512(Avx.LoadVector256(halves), mask);

    /// <summary><see cref="ScaledValues512(short*, Vector512{int})"/> for sixteen halves already loaded (from two rows, say).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> ScaledValues512(Vector256<short> halves, Vector512<int> mask) =>
        (Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(halves), 13) & mask).AsSingle();

    /// <summary>
    /// Eight halves at <paramref name="halves"/> as h·2^−112 (see <see cref="ToScaledValues"/>): widen,
    /// shift by 13, and with <paramref name="mask"/> = Vector256.Create(<see cref="ScaledValueMask"/>),
    /// which callers hoist out of their loops. Shared by the LM head and the attention kernels.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe Vector256<float> ScaledValues256(short* halves, Vector256<int> mask) =>
        Avx2.And(Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(Sse2.LoadVector128(halves)), 13), mask).AsSingle();

    /// <summary>
    /// <see cref="ScaledValues256"/> on 128-bit vectors (any platform with Vector128, ARM64 included):
    /// eight halves at <paramref name="halves"/> as two vectors of four, h·2^−112 each, with
    /// <paramref name="mask"/> = Vector128.Create(<see cref="ScaledValueMask"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe void ScaledValues128(short* halves, Vector128<int> mask, out Vector128<float> low, out Vector128<float> high)
    {
        if (AdvSimd.IsSupported)
        {
            // sshll widens and shifts in one instruction (the portable form below compiles to a
            // widening, then a shift): 4 vector operations per 8 halves instead of 6. The low four
            // are loaded on their own: taken from the 16-byte load, they cost a register copy.
            low = (AdvSimd.ShiftLeftLogicalWideningLower(AdvSimd.LoadVector64(halves), 13).AsInt32() & mask).AsSingle();
            high = (AdvSimd.ShiftLeftLogicalWideningUpper(AdvSimd.LoadVector128(halves), 13).AsInt32() & mask).AsSingle();
            return;
        }
        Vector128<short> h = Vector128.Load(halves);
        low = ((Vector128.WidenLower(h) << 13) & mask).AsSingle();
        high = ((Vector128.WidenUpper(h) << 13) & mask).AsSingle();
    }

    private static unsafe float TailDot(short* row, float* scaledX, int from, int columns)
    {
        float sum = 0;
        for (int k = from; k < columns; k++)
            sum += BitConverter.Int32BitsToSingle((row[k] << 13) & BodyMask) * scaledX[k];
        return sum;
    }

    /// <summary>x·2^112 into <paramref name="scaled"/>; false when some |x| is too large (or not finite)
    /// for that to stay finite, and the caller must take the exact reference path instead.</summary>
    private static bool ScaleBy2Pow112(ReadOnlySpan<float> x, Span<float> scaled)
    {
        float s = TwoPow112;
        bool safe = true;
        int k = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var factor = Vector256.Create(s);
            var limit = Vector256.Create(MaxScalableInput);
            var inRange = Vector256<float>.AllBitsSet;
            for (; k + 8 <= scaled.Length; k += 8)
            {
                Vector256<float> v = Vector256.Create(x.Slice(k, 8));
                inRange &= Vector256.LessThanOrEqual(Vector256.Abs(v), limit);   // false for NaN
                (v * factor).CopyTo(scaled.Slice(k, 8));
            }
            safe = inRange.AsInt32() == Vector256<int>.AllBitsSet;
        }
        for (; k < scaled.Length; k++)
        {
            float v = x[k];
            safe &= Math.Abs(v) <= MaxScalableInput;
            scaled[k] = v * s;
        }
        return safe;
    }

    /// <summary>The largest F16 value; |x| up to this keeps x·2^112 below float max.</summary>
    private const float MaxScalableInput = 65504f;

    private static void Validate(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        if (columns <= 0 || x.Length < columns)
            throw new ArgumentException($"input of {x.Length} values cannot feed {columns} columns", nameof(x));
        if (rowStart < 0 || rowCount < 0 || (long)(rowStart + rowCount) * columns > matrix.Length)
            throw new ArgumentException($"rows {rowStart}..{rowStart + rowCount} of {columns} columns run past the {matrix.Length}-value matrix", nameof(matrix));
        if (dst.Length < rowCount)
            throw new ArgumentException($"{rowCount} results do not fit the {dst.Length}-element destination", nameof(dst));
    }
}
