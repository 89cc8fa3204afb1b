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

    /// <summary>AVX-512F LM-head rows, 4 rows per input load; 16 products per FMA.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsAvx512(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        if (!Avx512F.IsSupported) throw new PlatformNotSupportedException("needs AVX-512F");
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        int vecColumns = columns & ~15;
        Span<float> scaled = columns <= 16384 ? stackalloc float[columns] : new float[columns];
        if (!ScaleBy2Pow112(x, scaled))
        {
            DotRowsScalar(matrix, columns, x, rowStart, rowCount, dst);
            return;
        }
        unsafe
        {
            fixed (Half* m = matrix)
            fixed (float* xs = scaled)
            {
                var mask = Vector512.Create(BodyMask);
                int r = 0;
                for (; r + 4 <= rowCount; r += 4)
                {
                    short* w0 = (short*)(m + (long)(rowStart + r) * columns);
                    short* w1 = w0 + columns, w2 = w1 + columns, w3 = w2 + columns;
                    Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    // 4 rows = 4 interleaved streams the hardware prefetcher follows poorly; fetch the
                    // tile two tiles ahead (40 KB for 2560 columns: into L2, prefetcht1) at the rate this
                    // loop consumes it (4 × 32 bytes per step).
                    byte* ahead = (byte*)(w0 + 8L * columns);
                    for (int k = 0; k < vecColumns; k += 16)
                    {
                        Sse.Prefetch1(ahead + 8L * k);
                        Sse.Prefetch1(ahead + 8L * k + 64);
                        Vector512<float> xv = Avx512F.LoadVector512(xs + k);
                        a0 = Avx512F.FusedMultiplyAdd(ScaledValues512(w0 + k, mask), xv, a0);
                        a1 = Avx512F.FusedMultiplyAdd(ScaledValues512(w1 + k, mask), xv, a1);
                        a2 = Avx512F.FusedMultiplyAdd(ScaledValues512(w2 + k, mask), xv, a2);
                        a3 = Avx512F.FusedMultiplyAdd(ScaledValues512(w3 + k, mask), xv, a3);
                    }
                    dst[r] = Vector512.Sum(a0) + TailDot(w0, xs, vecColumns, columns);
                    dst[r + 1] = Vector512.Sum(a1) + TailDot(w1, xs, vecColumns, columns);
                    dst[r + 2] = Vector512.Sum(a2) + TailDot(w2, xs, vecColumns, columns);
                    dst[r + 3] = Vector512.Sum(a3) + TailDot(w3, xs, vecColumns, columns);
                }
                for (; r < rowCount; r++)
                {
                    short* w0 = (short*)(m + (long)(rowStart + r) * columns);
                    Vector512<float> a0 = default;
                    for (int k = 0; k < vecColumns; k += 16)
                        a0 = Avx512F.FusedMultiplyAdd(ScaledValues512(w0 + k, mask), Avx512F.LoadVector512(xs + k), a0);
                    dst[r] = Vector512.Sum(a0) + TailDot(w0, xs, vecColumns, columns);
                }
            }
        }
    }

    /// <summary>
    /// AVX2 + FMA LM-head rows, one row at a time with four 8-lane accumulators. Reading one row after
    /// the other is a single sequential stream, which the hardware prefetcher follows at full speed,
    /// faster than four interleaved rows sharing each input load (the input is 10 KB and stays in L1
    /// either way).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsAvx2(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported) throw new PlatformNotSupportedException("needs AVX2 and FMA");
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        int wide = columns & ~31, vecColumns = columns & ~7;
        Span<float> scaled = columns <= 16384 ? stackalloc float[columns] : new float[columns];
        if (!ScaleBy2Pow112(x, scaled))
        {
            DotRowsScalar(matrix, columns, x, rowStart, rowCount, dst);
            return;
        }
        unsafe
        {
            fixed (Half* m = matrix)
            fixed (float* xs = scaled)
            {
                var mask = Vector256.Create(BodyMask);
                for (int r = 0; r < rowCount; r++)
                {
                    short* w = (short*)(m + (long)(rowStart + r) * columns);
                    Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    int k = 0;
                    for (; k < wide; k += 32)
                    {
                        a0 = Fma.MultiplyAdd(ScaledValues256(w + k, mask), Avx.LoadVector256(xs + k), a0);
                        a1 = Fma.MultiplyAdd(ScaledValues256(w + k + 8, mask), Avx.LoadVector256(xs + k + 8), a1);
                        a2 = Fma.MultiplyAdd(ScaledValues256(w + k + 16, mask), Avx.LoadVector256(xs + k + 16), a2);
                        a3 = Fma.MultiplyAdd(ScaledValues256(w + k + 24, mask), Avx.LoadVector256(xs + k + 24), a3);
                    }
                    for (; k < vecColumns; k += 8)
                        a0 = Fma.MultiplyAdd(ScaledValues256(w + k, mask), Avx.LoadVector256(xs + k), a0);
                    dst[r] = Vector256.Sum((a0 + a1) + (a2 + a3)) + TailDot(w, xs, vecColumns, columns);
                }
            }
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

    /// <summary>Columns per block of <see cref="DotRowsTokensVector128"/>: a block of four tokens' scaled inputs is 8 KB,
    /// so it stays in L1 while the tile's rows go through it. A multiple of 32.</summary>
    private const int TokenColumnBlock = 512;

    /// <summary>Columns per block of <see cref="DotRowsTokensAvx2"/>: its pair loop runs 40 steps a call at 2560 columns,
    /// and with blocks of 512 the start and end of its FMA chains showed more; four tokens' inputs (20 KB) still
    /// mostly stay in L1. A multiple of 32.</summary>
    private const int Avx2PairColumnBlock = 1280;

    /// <summary>Columns per block of the 512-bit row-pair loops: four tokens' inputs are 20 KB, still inside
    /// an AVX-512 core's 48 KB L1, and each call of the loop runs 2.5 times longer than with 512, which
    /// pays its setup (16 accumulators loaded and stored) less often. A multiple of 32.</summary>
    private const int PairColumnBlock = 1280;

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
        int length = tokens * columns;
        float[] buffer = _scaledTokens is { } reused && reused.Length >= length + 15
            ? reused : (_scaledTokens = GC.AllocateUninitializedArray<float>(length + 15, pinned: true));
        int skip = (int)((64 - ((nint)Unsafe.AsPointer(ref buffer[0]) & 63)) & 63) / sizeof(float);
        Span<float> scaled = buffer.AsSpan(skip, length);
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

    /// <summary>A token count fixed at compile time: each instantiation of a several-token loop keeps exactly
    /// that many tokens' accumulators in registers (the tests on Count fold away).</summary>
    private interface ITokenCount { static abstract int Count { get; } }
    private readonly struct OneToken : ITokenCount { public static int Count => 1; }
    private readonly struct TwoTokens : ITokenCount { public static int Count => 2; }
    private readonly struct ThreeTokens : ITokenCount { public static int Count => 3; }
    private readonly struct FourTokens : ITokenCount { public static int Count => 4; }

    /// <summary>
    /// <see cref="DotRowsAvx2"/> for several tokens. Rows go in tiles of <see cref="TokenTileRows"/>, tokens in
    /// groups of up to four (balanced: 5 → 3 + 2), columns in blocks of <see cref="Avx2PairColumnBlock"/>. Within a
    /// block each pair of rows takes the single-token kernel's four accumulator slices one after the other: slice
    /// j's 8 columns of both rows are widened once and meet each token's input (loaded once for both rows) by FMA,
    /// so one load serves two FMAs; the accumulators stay in memory between slices and blocks. Every (row, token)
    /// accumulator still takes the single-token kernel's FMAs in its order, so the results are its results bit for
    /// bit. A group of one token, and a tile's odd last row, take the row loop (<see cref="Accumulate256{TCount}"/>).
    /// A token whose input cannot be scaled takes the reference path, as it does there.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void DotRowsTokensAvx2(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int tokens, int rowStart, int rowCount,
        Span<float> dst, int dstStride)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported) throw new PlatformNotSupportedException("needs AVX2 and FMA");
        Span<int> vector = tokens <= 256 ? stackalloc int[tokens] : new int[tokens];
        Span<float> scaledAll = ScaleTokens(matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride, vector, out int vectorTokens);
        // Two rows by four tokens: eight accumulators, two widened weight vectors, the input and the mask fit in
        // 16 registers, and eight independent FMA chains cover the FMA latency at two FMAs a cycle.
        const int maxGroup = 4;
        int groups = (vectorTokens + maxGroup - 1) / maxGroup;
        // Groups as even as the count allows (5 tokens: 2 + 3), so no group is left with a lone token.
        int GroupStart(int group) => vectorTokens * group / groups;
        int wide = columns & ~31;
        Vector256<float>* acc = stackalloc Vector256<float>[TokenTileRows * maxGroup * 4];
        // The pair loop reads its group's inputs from a copy interleaved by 8 columns, slice by slice within each
        // column block (SliceStart): a call's loads for all the tokens are one contiguous run (with the
        // tokens a row apart, 4 KB multiples put them in the same L1 sets).
        int interleavedLength = vectorTokens * wide + 15;
        float[] interleavedBuffer = _interleavedTokens is { } reused && reused.Length >= interleavedLength
            ? reused : (_interleavedTokens = GC.AllocateUninitializedArray<float>(interleavedLength, pinned: true));
        fixed (Half* m = matrix)
        fixed (float* scaled = scaledAll)
        fixed (float* d = dst)
        fixed (float* interleavedStart = interleavedBuffer)
        {
            float* interleaved = (float*)(((nint)interleavedStart + 63) & ~(nint)63);
            for (int gi = 0; gi < groups; gi++)
            {
                int g0 = GroupStart(gi), g = GroupStart(gi + 1) - g0;
                for (int i = 0; i < g; i++)
                {
                    float* from = scaled + (long)(g0 + i) * columns, to = interleaved + (long)g0 * wide + 8 * i;
                    for (int c0 = 0; c0 < wide; c0 += Avx2PairColumnBlock)
                    {
                        int c1 = Math.Min(wide, c0 + Avx2PairColumnBlock);
                        for (int j = 0; j < 4; j++)
                        {
                            float* slice = to + (long)SliceStart(c0, c1, j) * g;
                            for (int c = c0 + 8 * j; c < c1; c += 32, slice += 8 * g)
                                Avx.Store(slice, Avx.LoadVector256(from + c));
                        }
                    }
                }
            }
            var mask = Vector256.Create(BodyMask);
            byte* end = (byte*)(m + (long)(rowStart + rowCount) * columns);
            for (int r0 = 0; r0 < rowCount; r0 += TokenTileRows)
            {
                int tileRows = Math.Min(TokenTileRows, rowCount - r0);
                short* tile = (short*)(m + (long)(rowStart + r0) * columns);
                // The tile after next, spread over this tile's first token group (see DotRowsTokensAvx512).
                byte* ahead = (byte*)(tile + 2L * TokenTileRows * columns);
                for (int gi = 0; gi < groups; gi++)
                {
                    int g0 = GroupStart(gi), g = GroupStart(gi + 1) - g0;
                    float* xg = scaled + (long)g0 * columns, xi = interleaved + (long)g0 * wide;
                    new Span<Vector256<float>>(acc, tileRows * 4 * g).Clear();
                    for (int c0 = 0; c0 < wide; c0 += Avx2PairColumnBlock)
                    {
                        int c1 = Math.Min(wide, c0 + Avx2PairColumnBlock);
                        int r = 0;
                        // One token has only two chains per row pair: the row loop's four do better.
                        if (g > 1)
                            for (; r + 2 <= tileRows; r += 2)
                            {
                                short* w = tile + (long)r * columns;
                                // A line per 64 columns of a slice: over the four slices, the pair's bytes.
                                byte* next = PrefetchTarget(ref ahead, end, g0 == 0, w, (c1 - c0) / 32 * 128);
                                Vector256<float>* a = acc + r * 4 * g;
                                for (int j = 0; j < 4; j++, next += (c1 - c0))
                                {
                                    float* xj = xi + SliceStart(c0, c1, j) * g;
                                    switch (g)
                                    {
                                        case 2: AccumulatePair<TwoTokens>(w + 8 * j, xj, columns, c0, c1, a + j, a + 4 * g + j, mask, next); break;
                                        case 3: AccumulatePair<ThreeTokens>(w + 8 * j, xj, columns, c0, c1, a + j, a + 4 * g + j, mask, next); break;
                                        default: AccumulatePair<FourTokens>(w + 8 * j, xj, columns, c0, c1, a + j, a + 4 * g + j, mask, next); break;
                                    }
                                }
                            }
                        for (; r < tileRows; r++)
                        {
                            short* w = tile + (long)r * columns;
                            byte* next = PrefetchTarget(ref ahead, end, g0 == 0, w, (c1 - c0) / 32 * 64);
                            Vector256<float>* a = acc + r * 4 * g;
                            switch (g)
                            {
                                case 1: Accumulate256<OneToken>(w, xg, columns, c0, c1, a, mask, next); break;
                                case 2: Accumulate256<TwoTokens>(w, xg, columns, c0, c1, a, mask, next); break;
                                case 3: Accumulate256<ThreeTokens>(w, xg, columns, c0, c1, a, mask, next); break;
                                default: Accumulate256<FourTokens>(w, xg, columns, c0, c1, a, mask, next); break;
                            }
                        }
                    }
                    for (int r = 0; r < tileRows; r++)
                        for (int i = 0; i < g; i++)
                        {
                            Vector256<float>* a = acc + (r * g + i) * 4;
                            d[(long)vector[g0 + i] * dstStride + r0 + r] =
                                FinishRow(tile + (long)r * columns, xg + (long)i * columns, columns, a[0], a[1], a[2], a[3], mask);
                        }
                }
            }
        }
    }

    /// <summary>Where accumulator slice <paramref name="j"/> of the column block [<paramref name="c0"/>,
    /// <paramref name="c1"/>) starts in <see cref="DotRowsTokensAvx2"/>'s copy of the inputs, in units of one
    /// token's input: the block holds its four slices one after the other (each a quarter of the block), so a call
    /// of <see cref="AccumulatePair{TCount}"/> reads one contiguous run.</summary>
    private static int SliceStart(int c0, int c1, int j) => c0 + j * ((c1 - c0) / 4);

    /// <summary>One accumulator slice of two rows for <typeparamref name="TCount"/> tokens over columns [c0, c1)
    /// (multiples of 32): every 32 columns k, the 8 halves at <paramref name="w"/> + k (and one row, <paramref
    /// name="columns"/> halves, further) times each token's 8 inputs, which <paramref name="x"/> holds interleaved
    /// (token u's at x + 8u, the next step's 8·Count floats further). Token u's accumulators are acc0[4u] and
    /// acc1[4u]. One prefetch at <paramref name="prefetch"/> per step, 32 bytes apart.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static unsafe void AccumulatePair<TCount>(short* w, float* x, int columns, int c0, int c1, Vector256<float>* acc0,
        Vector256<float>* acc1, Vector256<int> mask, byte* prefetch)
        where TCount : struct, ITokenCount
    {
        short* w1 = w + columns;
        int step = 8 * TCount.Count;
        Vector256<float> a0 = acc0[0], b0 = acc1[0];
        Vector256<float> a1 = acc0[4], b1 = acc1[4];
        Vector256<float> a2 = default, b2 = default, a3 = default, b3 = default;
        if (TCount.Count > 2) { a2 = acc0[8]; b2 = acc1[8]; }
        if (TCount.Count > 3) { a3 = acc0[12]; b3 = acc1[12]; }
        // A line per two steps would be enough; one per step (the same line twice) keeps a single loop body.
        for (int k = c0; k < c1; k += 32, x += step, prefetch += 32)
        {
            Sse.Prefetch0(prefetch);
            Vector256<float> v = ScaledValues256(w + k, mask), u = ScaledValues256(w1 + k, mask);
            Vector256<float> xv = Avx.LoadVector256(x);
            a0 = Fma.MultiplyAdd(v, xv, a0); b0 = Fma.MultiplyAdd(u, xv, b0);
            xv = Avx.LoadVector256(x + 8);
            a1 = Fma.MultiplyAdd(v, xv, a1); b1 = Fma.MultiplyAdd(u, xv, b1);
            if (TCount.Count > 2) { xv = Avx.LoadVector256(x + 16); a2 = Fma.MultiplyAdd(v, xv, a2); b2 = Fma.MultiplyAdd(u, xv, b2); }
            if (TCount.Count > 3) { xv = Avx.LoadVector256(x + 24); a3 = Fma.MultiplyAdd(v, xv, a3); b3 = Fma.MultiplyAdd(u, xv, b3); }
        }
        acc0[0] = a0; acc1[0] = b0; acc0[4] = a1; acc1[4] = b1;
        if (TCount.Count > 2) { acc0[8] = a2; acc1[8] = b2; }
        if (TCount.Count > 3) { acc0[12] = a3; acc1[12] = b3; }
    }

    /// <summary>
    /// Where a row loop of the several-token kernels prefetches: when it <paramref name="fetches"/> (the AVX2
    /// loops in a tile's first token group, the 512-bit pair loops in every group), the next
    /// <paramref name="bytes"/> of the tile after next (and <paramref name="ahead"/> moves past them); otherwise,
    /// or past the matrix's end, the loop's own rows, already cached.
    /// </summary>
    private static unsafe byte* PrefetchTarget(ref byte* ahead, byte* end, bool fetches, short* rows, int bytes)
    {
        byte* target = fetches && ahead < end ? ahead : (byte*)rows;
        ahead += bytes;
        return target;
    }

    /// <summary>Columns [c0, c1) (multiples of 32) of one row for <typeparamref name="TCount"/> tokens whose
    /// scaled inputs lie <paramref name="columns"/> apart from <paramref name="x"/>; token u's four accumulators
    /// are acc[4u … 4u + 3], loaded and stored around the loop. One line at <paramref name="prefetch"/> is
    /// prefetched per step (<see cref="PrefetchTarget"/>).</summary>
    // Not inlined: its own method keeps its accumulators and pointers in registers.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Accumulate256<TCount>(short* w, float* x, int columns, int c0, int c1, Vector256<float>* acc, Vector256<int> mask,
        byte* prefetch)
        where TCount : struct, ITokenCount
    {
        float* x0 = x, x1 = x + columns, x2 = x1 + columns, x3 = x2 + columns;
        Vector256<float> a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
        Vector256<float> e0 = default, e1 = default, e2 = default, e3 = default;
        Vector256<float> f0 = default, f1 = default, f2 = default, f3 = default;
        if (TCount.Count > 1) { b0 = acc[4]; b1 = acc[5]; b2 = acc[6]; b3 = acc[7]; }
        if (TCount.Count > 2) { e0 = acc[8]; e1 = acc[9]; e2 = acc[10]; e3 = acc[11]; }
        if (TCount.Count > 3) { f0 = acc[12]; f1 = acc[13]; f2 = acc[14]; f3 = acc[15]; }
        for (int k = c0; k < c1; k += 32, prefetch += 64)
        {
            Sse.Prefetch0(prefetch);
            Vector256<float> v = ScaledValues256(w + k, mask);
            a0 = Fma.MultiplyAdd(v, Avx.LoadVector256(x0 + k), a0);
            if (TCount.Count > 1) b0 = Fma.MultiplyAdd(v, Avx.LoadVector256(x1 + k), b0);
            if (TCount.Count > 2) e0 = Fma.MultiplyAdd(v, Avx.LoadVector256(x2 + k), e0);
            if (TCount.Count > 3) f0 = Fma.MultiplyAdd(v, Avx.LoadVector256(x3 + k), f0);
            v = ScaledValues256(w + k + 8, mask);
            a1 = Fma.MultiplyAdd(v, Avx.LoadVector256(x0 + k + 8), a1);
            if (TCount.Count > 1) b1 = Fma.MultiplyAdd(v, Avx.LoadVector256(x1 + k + 8), b1);
            if (TCount.Count > 2) e1 = Fma.MultiplyAdd(v, Avx.LoadVector256(x2 + k + 8), e1);
            if (TCount.Count > 3) f1 = Fma.MultiplyAdd(v, Avx.LoadVector256(x3 + k + 8), f1);
            v = ScaledValues256(w + k + 16, mask);
            a2 = Fma.MultiplyAdd(v, Avx.LoadVector256(x0 + k + 16), a2);
            if (TCount.Count > 1) b2 = Fma.MultiplyAdd(v, Avx.LoadVector256(x1 + k + 16), b2);
            if (TCount.Count > 2) e2 = Fma.MultiplyAdd(v, Avx.LoadVector256(x2 + k + 16), e2);
            if (TCount.Count > 3) f2 = Fma.MultiplyAdd(v, Avx.LoadVector256(x3 + k + 16), f2);
            v = ScaledValues256(w + k + 24, mask);
            a3 = Fma.MultiplyAdd(v, Avx.LoadVector256(x0 + k + 24), a3);
            if (TCount.Count > 1) b3 = Fma.MultiplyAdd(v, Avx.LoadVector256(x1 + k + 24), b3);
            if (TCount.Count > 2) e3 = Fma.MultiplyAdd(v, Avx.LoadVector256(x2 + k + 24), e3);
            if (TCount.Count > 3) f3 = Fma.MultiplyAdd(v, Avx.LoadVector256(x3 + k + 24), f3);
        }
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
        if (TCount.Count > 1) { acc[4] = b0; acc[5] = b1; acc[6] = b2; acc[7] = b3; }
        if (TCount.Count > 2) { acc[8] = e0; acc[9] = e1; acc[10] = e2; acc[11] = e3; }
        if (TCount.Count > 3) { acc[12] = f0; acc[13] = f1; acc[14] = f2; acc[15] = f3; }
    }

    /// <summary>The end of <see cref="DotRowsAvx2"/>'s row for one token, from its four accumulators after the
    /// 32-column steps: the 8-column steps into the first, the reduction, the last columns one by one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe float FinishRow(short* w, float* xs, int columns, Vector256<float> a0, Vector256<float> a1, Vector256<float> a2,
        Vector256<float> a3, Vector256<int> mask)
    {
        int vecColumns = columns & ~7;
        for (int k = columns & ~31; k < vecColumns; k += 8)
            a0 = Fma.MultiplyAdd(ScaledValues256(w + k, mask), Avx.LoadVector256(xs + k), a0);
        return Vector256.Sum((a0 + a1) + (a2 + a3)) + TailDot(w, xs, vecColumns, columns);
    }

    /// <summary>
    /// <see cref="DotRowsTokensAvx2"/> with 512-bit vectors, two rows by up to four tokens per step: a 512-bit
    /// accumulator holds two of the single-token kernel's 256-bit ones side by side (columns k … k + 7 in its
    /// low half, k + 8 … k + 15 in its high half), so every lane takes the same FMAs in the same order and the
    /// results are <see cref="DotRowsAvx2"/>'s bit for bit. Each input vector loaded serves both rows (one
    /// row by eight tokens spent more cycles on input loads than on FMAs); more than four tokens take
    /// the tile again from L2. The tile after next is prefetched while one is computed, spread over all its
    /// token groups (two lines per step of the pair loop for one group, a share of them for several, so
    /// memory keeps streaming while the second group computes); issued as a burst of 32 before each call,
    /// the prefetches overlapped the FMAs less (docs/performance.md). The pair loop is emitted machine code
    /// (<see cref="Avx512PairLoops"/>), so Native AOT binaries built for x86-64-v3 run it too; a tile's odd
    /// last row takes the AVX2 loop, whose accumulators have the same layout. Where the pair loops cannot
    /// run this is <see cref="DotRowsTokensAvx2"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void DotRowsTokensAvx512(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int tokens, int rowStart, int rowCount,
        Span<float> dst, int dstStride)
    {
        if (Avx512PairLoops.Instance is not { } loops)
        {
            DotRowsTokensAvx2(matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride);
            return;
        }
        if (!Avx2.IsSupported || !Fma.IsSupported) throw new PlatformNotSupportedException("needs AVX2 and FMA");
        const int group = Avx512PairLoops.MaxTokens;
        Span<int> vector = tokens <= 256 ? stackalloc int[tokens] : new int[tokens];
        Span<float> scaledAll = ScaleTokens(matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride, vector, out int vectorTokens);
        int wide = columns & ~31;
        int groups = (vectorTokens + group - 1) / group;
        long tileBytes = (long)TokenTileRows * columns * sizeof(short);
        // Per (row, token) the AVX2 loop's four 256-bit accumulators, which are the pair loop's two 512-bit ones.
        Vector256<float>* acc = stackalloc Vector256<float>[TokenTileRows * group * 4];
        Avx512PairLoops.Args args = default;
        args.RowBytes = (nint)columns * sizeof(short);
        args.AheadStep = 128 / Math.Max(1, groups);
        fixed (Half* m = matrix)
        fixed (float* scaled = scaledAll)
        fixed (float* d = dst)
        {
            var mask = Vector256.Create(BodyMask);
            byte* end = (byte*)(m + (long)(rowStart + rowCount) * columns);
            for (int r0 = 0; r0 < rowCount; r0 += TokenTileRows)
            {
                int tileRows = Math.Min(TokenTileRows, rowCount - r0);
                short* tile = (short*)(m + (long)(rowStart + r0) * columns);
                // The tile after next, spread over all of this tile's token groups (group i fetches the i-th
                // part), so memory keeps streaming while later groups compute from cache.
                byte* tileAhead = (byte*)tile + 2 * tileBytes;
                for (int g0 = 0; g0 < vectorTokens; g0 += group)
                {
                    int g = Math.Min(group, vectorTokens - g0);
                    float* xg = scaled + (long)g0 * columns;
                    byte* ahead = tileAhead + (long)(g0 / group) * tileBytes / groups;
                    new Span<Vector256<float>>(acc, tileRows * 4 * g).Clear();
                    for (int c0 = 0; c0 < wide; c0 += PairColumnBlock)
                    {
                        int c1 = Math.Min(wide, c0 + PairColumnBlock);
                        int r = 0;
                        for (; r + 2 <= tileRows; r += 2)
                        {
                            short* w = tile + (long)r * columns;
                            args.Ahead = PrefetchTarget(ref ahead, end, true, w, (c1 - c0) / 16 * 64 / groups);   // two rows' worth
                            args.Row = w + c0;
                            float** inputs = &args.X0;
                            for (int u = 0; u < g; u++) inputs[u] = xg + (long)u * columns + c0;
                            args.Steps = (c1 - c0) / 32;
                            args.Acc0 = (float*)(acc + r * 4 * g);
                            args.Acc1 = (float*)(acc + (r + 1) * 4 * g);
                            loops.Run(g, &args);
                        }
                        if (r < tileRows)
                        {
                            short* w = tile + (long)r * columns;
                            // Its loop prefetches a line per 32 columns, one group's rate: later groups of several fetch nothing.
                            byte* next = PrefetchTarget(ref ahead, end, groups == 1, w, (c1 - c0) / 32 * 64 / groups);
                            Vector256<float>* a = acc + r * 4 * g;
                            switch (g)
                            {
                                case 1: Accumulate256<OneToken>(w, xg, columns, c0, c1, a, mask, next); break;
                                case 2: Accumulate256<TwoTokens>(w, xg, columns, c0, c1, a, mask, next); break;
                                case 3: Accumulate256<ThreeTokens>(w, xg, columns, c0, c1, a, mask, next); break;
                                default: Accumulate256<FourTokens>(w, xg, columns, c0, c1, a, mask, next); break;
                            }
                        }
                    }
                    for (int r = 0; r < tileRows; r++)
                        for (int i = 0; i < g; i++)
                        {
                            Vector256<float>* a = acc + (r * g + i) * 4;
                            d[(long)vector[g0 + i] * dstStride + r0 + r] =
                                FinishRow(tile + (long)r * columns, xg + (long)i * columns, columns, a[0], a[1], a[2], a[3], mask);
                        }
                }
            }
        }
    }

    /// <summary>Portable 128-bit LM-head rows (ARM64 AdvSimd and any Vector128 platform).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsVector128(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        int vecColumns = columns & ~7;
        Span<float> scaled = columns <= 16384 ? stackalloc float[columns] : new float[columns];
        if (!ScaleBy2Pow112(x, scaled))
        {
            DotRowsScalar(matrix, columns, x, rowStart, rowCount, dst);
            return;
        }
        unsafe
        {
            fixed (Half* m = matrix)
            fixed (float* xs = scaled)
            {
                var mask = Vector128.Create(BodyMask);
                for (int r = 0; r < rowCount; r++)
                {
                    short* w0 = (short*)(m + (long)(rowStart + r) * columns);
                    // Four accumulators over 16 columns a step: with two, each fmla waited on the one
                    // before it (4 cycles on Neoverse N1 and V1), slower than the conversions themselves.
                    Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    int k = 0;
                    for (; k + 16 <= vecColumns; k += 16)
                    {
                        ScaledValues128(w0 + k, mask, out Vector128<float> lo0, out Vector128<float> hi0);
                        ScaledValues128(w0 + k + 8, mask, out Vector128<float> lo1, out Vector128<float> hi1);
                        a0 = Vector128.FusedMultiplyAdd(lo0, Vector128.Load(xs + k), a0);
                        a1 = Vector128.FusedMultiplyAdd(hi0, Vector128.Load(xs + k + 4), a1);
                        a2 = Vector128.FusedMultiplyAdd(lo1, Vector128.Load(xs + k + 8), a2);
                        a3 = Vector128.FusedMultiplyAdd(hi1, Vector128.Load(xs + k + 12), a3);
                    }
                    for (; k < vecColumns; k += 8)
                    {
                        ScaledValues128(w0 + k, mask, out Vector128<float> lo, out Vector128<float> hi);
                        a0 = Vector128.FusedMultiplyAdd(lo, Vector128.Load(xs + k), a0);
                        a1 = Vector128.FusedMultiplyAdd(hi, Vector128.Load(xs + k + 4), a1);
                    }
                    dst[r] = Vector128.Sum((a0 + a2) + (a1 + a3)) + TailDot(w0, xs, vecColumns, columns);
                }
            }
        }
    }

    /// <summary>
    /// <see cref="DotRowsVector128"/> for several tokens (the NEON sets' batched head): each 8-half group is
    /// widened once for up to four tokens, each with the single-token kernel's four accumulators (ARM64 has 32
    /// vector registers), in tiles and column blocks as <see cref="DotRowsTokensAvx2"/>: the results are
    /// <see cref="DotRowsVector128"/>'s bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void DotRowsTokensVector128(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int tokens, int rowStart, int rowCount,
        Span<float> dst, int dstStride)
    {
        const int group = 4;
        Span<int> vector = tokens <= 256 ? stackalloc int[tokens] : new int[tokens];
        Span<float> scaledAll = ScaleTokens(matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride, vector, out int vectorTokens);
        int wide = columns & ~15;
        Vector128<float>* acc = stackalloc Vector128<float>[TokenTileRows * group * 4];
        fixed (Half* m = matrix)
        fixed (float* scaled = scaledAll)
        fixed (float* d = dst)
        {
            var mask = Vector128.Create(BodyMask);
            for (int r0 = 0; r0 < rowCount; r0 += TokenTileRows)
            {
                int tileRows = Math.Min(TokenTileRows, rowCount - r0);
                short* tile = (short*)(m + (long)(rowStart + r0) * columns);
                for (int g0 = 0; g0 < vectorTokens; g0 += group)
                {
                    int g = Math.Min(group, vectorTokens - g0);
                    float* xg = scaled + (long)g0 * columns;
                    new Span<Vector128<float>>(acc, tileRows * 4 * g).Clear();
                    for (int c0 = 0; c0 < wide; c0 += TokenColumnBlock)
                    {
                        int c1 = Math.Min(wide, c0 + TokenColumnBlock);
                        for (int r = 0; r < tileRows; r++)
                        {
                            short* w = tile + (long)r * columns;
                            Vector128<float>* a = acc + r * 4 * g;
                            switch (g)
                            {
                                case 1: Accumulate128<OneToken>(w, xg, columns, c0, c1, a, mask); break;
                                case 2: Accumulate128<TwoTokens>(w, xg, columns, c0, c1, a, mask); break;
                                case 3: Accumulate128<ThreeTokens>(w, xg, columns, c0, c1, a, mask); break;
                                default: Accumulate128<FourTokens>(w, xg, columns, c0, c1, a, mask); break;
                            }
                        }
                    }
                    for (int r = 0; r < tileRows; r++)
                        for (int i = 0; i < g; i++)
                        {
                            Vector128<float>* a = acc + (r * g + i) * 4;
                            short* w = tile + (long)r * columns;
                            float* xs = xg + (long)i * columns;
                            Vector128<float> a0 = a[0], a1 = a[1];
                            int vecColumns = columns & ~7;
                            for (int k = wide; k < vecColumns; k += 8)
                            {
                                ScaledValues128(w + k, mask, out Vector128<float> lo, out Vector128<float> hi);
                                a0 = Vector128.FusedMultiplyAdd(lo, Vector128.Load(xs + k), a0);
                                a1 = Vector128.FusedMultiplyAdd(hi, Vector128.Load(xs + k + 4), a1);
                            }
                            d[(long)vector[g0 + i] * dstStride + r0 + r] = Vector128.Sum((a0 + a[2]) + (a1 + a[3])) + TailDot(w, xs, vecColumns, columns);
                        }
                }
            }
        }
    }

    /// <summary><see cref="Accumulate256{TCount}"/> on 128-bit vectors, 16 columns a step (c0, c1 multiples of 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Accumulate128<TCount>(short* w, float* x, int columns, int c0, int c1, Vector128<float>* acc, Vector128<int> mask)
        where TCount : struct, ITokenCount
    {
        float* x0 = x, x1 = x + columns, x2 = x1 + columns, x3 = x2 + columns;
        Vector128<float> a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
        Vector128<float> b0 = default, b1 = default, b2 = default, b3 = default;
        Vector128<float> e0 = default, e1 = default, e2 = default, e3 = default;
        Vector128<float> f0 = default, f1 = default, f2 = default, f3 = default;
        if (TCount.Count > 1) { b0 = acc[4]; b1 = acc[5]; b2 = acc[6]; b3 = acc[7]; }
        if (TCount.Count > 2) { e0 = acc[8]; e1 = acc[9]; e2 = acc[10]; e3 = acc[11]; }
        if (TCount.Count > 3) { f0 = acc[12]; f1 = acc[13]; f2 = acc[14]; f3 = acc[15]; }
        for (int k = c0; k < c1; k += 16)
        {
            ScaledValues128(w + k, mask, out Vector128<float> lo0, out Vector128<float> hi0);
            ScaledValues128(w + k + 8, mask, out Vector128<float> lo1, out Vector128<float> hi1);
            a0 = Vector128.FusedMultiplyAdd(lo0, Vector128.Load(x0 + k), a0);
            a1 = Vector128.FusedMultiplyAdd(hi0, Vector128.Load(x0 + k + 4), a1);
            a2 = Vector128.FusedMultiplyAdd(lo1, Vector128.Load(x0 + k + 8), a2);
            a3 = Vector128.FusedMultiplyAdd(hi1, Vector128.Load(x0 + k + 12), a3);
            if (TCount.Count > 1)
            {
                b0 = Vector128.FusedMultiplyAdd(lo0, Vector128.Load(x1 + k), b0);
                b1 = Vector128.FusedMultiplyAdd(hi0, Vector128.Load(x1 + k + 4), b1);
                b2 = Vector128.FusedMultiplyAdd(lo1, Vector128.Load(x1 + k + 8), b2);
                b3 = Vector128.FusedMultiplyAdd(hi1, Vector128.Load(x1 + k + 12), b3);
            }
            if (TCount.Count > 2)
            {
                e0 = Vector128.FusedMultiplyAdd(lo0, Vector128.Load(x2 + k), e0);
                e1 = Vector128.FusedMultiplyAdd(hi0, Vector128.Load(x2 + k + 4), e1);
                e2 = Vector128.FusedMultiplyAdd(lo1, Vector128.Load(x2 + k + 8), e2);
                e3 = Vector128.FusedMultiplyAdd(hi1, Vector128.Load(x2 + k + 12), e3);
            }
            if (TCount.Count > 3)
            {
                f0 = Vector128.FusedMultiplyAdd(lo0, Vector128.Load(x3 + k), f0);
                f1 = Vector128.FusedMultiplyAdd(hi0, Vector128.Load(x3 + k + 4), f1);
                f2 = Vector128.FusedMultiplyAdd(lo1, Vector128.Load(x3 + k + 8), f2);
                f3 = Vector128.FusedMultiplyAdd(hi1, Vector128.Load(x3 + k + 12), f3);
            }
        }
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
        if (TCount.Count > 1) { acc[4] = b0; acc[5] = b1; acc[6] = b2; acc[7] = b3; }
        if (TCount.Count > 2) { acc[8] = e0; acc[9] = e1; acc[10] = e2; acc[11] = e3; }
        if (TCount.Count > 3) { acc[12] = f0; acc[13] = f1; acc[14] = f2; acc[15] = f3; }
    }

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
