namespace BitNet.Inference.Sampling;

/// <summary>
/// The sampler's random source: xoshiro256** seeded through SplitMix64. Small, fast, and the same
/// sequence for the same seed on every platform (unlike System.Random's unspecified algorithm).
/// </summary>
public sealed class SamplerRandom
{
    private ulong _s0, _s1, _s2, _s3;

    public SamplerRandom(ulong seed)
    {
        Seed = seed;
        ulong x = seed;
        _s0 = SplitMix(ref x);
        _s1 = SplitMix(ref x);
        _s2 = SplitMix(ref x);
        _s3 = SplitMix(ref x);
    }

    /// <summary>A generator with a seed drawn from the OS (what llama.cpp's default seed 0xFFFFFFFF means).</summary>
    public static SamplerRandom FromEntropy() =>
        new(BitConverter.ToUInt64(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)));

    public ulong Seed { get; }

    public ulong NextUInt64()
    {
        ulong result = RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1), 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    private static ulong RotateLeft(ulong x, int k) => x << k | x >> (64 - k);

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
