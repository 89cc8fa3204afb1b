using BitNet.Inference.Model;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Oracle;

/// <summary>The oracle model, loaded once for the oracle test classes.</summary>
public sealed class OracleModelFixture : IDisposable
{
    public BitNetModel Model { get; } = BitNetModel.Load(SharedData.OracleModelPath, new ModelLoadOptions { Kernel = "scalar" });
    public void Dispose() => Model.Dispose();
}
