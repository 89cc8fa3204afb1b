using BitNet.Inference.Model;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Oracle;

/// <summary>The oracle model, loaded once for the oracle test classes.</summary>
public sealed class OracleModelFixture : IDisposable
{
    /// <summary>The kernels under test: the best set this CPU (or DOTNET_Enable* switch, or qemu) offers,
    /// so scripts/test-isa.sh and scripts/test-arm64.sh check every SIMD path against bitnet.cpp.</summary>
    public static ModelLoadOptions Options { get; } = new();
    public BitNetModel Model { get; } = BitNetModel.Load(SharedData.OracleModelPath, Options);
    public void Dispose() => Model.Dispose();
}
