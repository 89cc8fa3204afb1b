using System.CommandLine;
using System.Text.Json;
using BitNet.Cli.Commands;
using BitNet.Tests.Shared;

namespace BitNet.Cli.Tests.Bench;

/// <summary>`bitnet bench`, run in-process on the oracle model with tiny prompt/generation sizes.</summary>
public sealed class BenchCommandTests : IDisposable
{
    private static readonly string[] WeightModes = ["memory", "move"];
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public void Dispose()
    {
        _out.Dispose();
        _err.Dispose();
    }

    private Task<int> Run(params string[] args)
    {
        var command = BenchCommand.Create(_out, _err, interactive: false);
        var root = new RootCommand { command };
        return root.Parse([command.Name, .. args]).InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task Json_output_reports_rates_ttft_memory_and_bandwidth()
    {
        Assert.Equal(0, await Run("-m", SharedData.OracleModelPath, "-p", "8", "-n", "4", "-r", "3", "-t", "2", "--json", "--no-probe"));
        using JsonDocument doc = JsonDocument.Parse(_out.ToString());
        JsonElement r = doc.RootElement;
        Assert.Equal(2, r.GetProperty("threads").GetInt32());
        Assert.Equal(8, r.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(4, r.GetProperty("generated_tokens").GetInt32());
        Assert.Equal(3, r.GetProperty("repetitions").GetInt32());
        Assert.Equal("f16", r.GetProperty("lm_head").GetString());
        Assert.Contains(r.GetProperty("weights").GetString(), WeightModes);   // auto resolved
        foreach (string test in new[] { "prefill_tok_s", "decode_tok_s" })
        {
            JsonElement s = r.GetProperty(test);
            double min = s.GetProperty("min").GetDouble(), median = s.GetProperty("median").GetDouble(), max = s.GetProperty("max").GetDouble();
            Assert.True(min > 0 && min <= median && median <= max, $"{test}: {min} ≤ {median} ≤ {max}");
        }
        Assert.True(r.GetProperty("ttft_s").GetDouble() > 0);
        // Oracle model: 4 layers of 256/128/512-wide ternary matrices plus the 128256×256 F16 head.
        long ternary = 4L * (256 * 256 + 2 * 128 * 256 + 256 * 256 + 3 * 512 * 256) / 4;
        Assert.Equal(ternary + 2L * 128256 * 256, r.GetProperty("bytes_per_decoded_token").GetInt64());
        Assert.True(r.GetProperty("decode_gb_s").GetDouble() > 0);
        if (OperatingSystem.IsLinux()) Assert.True(r.GetProperty("peak_rss_bytes").GetInt64() > 50_000_000);
    }

    [Fact]
    public async Task Parallel_decode_reports_each_stream_count_next_to_one_stream()
    {
        Assert.Equal(0, await Run("-m", SharedData.OracleModelPath, "-p", "8", "-n", "4", "-r", "2", "-t", "2", "--json", "--no-probe", "--parallel", "3"));
        using JsonDocument doc = JsonDocument.Parse(_out.ToString());
        var parallel = doc.RootElement.GetProperty("parallel").EnumerateArray().ToList();
        Assert.Equal([1, 3], parallel.Select(p => p.GetProperty("streams").GetInt32()));
        foreach (JsonElement p in parallel)
        {
            Assert.True(p.GetProperty("aggregate_tok_s").GetProperty("median").GetDouble() > 0);
            Assert.True(p.GetProperty("itl_p99_s").GetDouble() >= p.GetProperty("itl_p50_s").GetDouble());
            // Positions fill whole blocks of 32 here (8 + 4 of them per stream): held ≥ needed.
            Assert.True(p.GetProperty("kv_bytes_held").GetInt64() >= p.GetProperty("kv_bytes_needed").GetInt64());
        }
    }

    [Theory]
    [InlineData("0")]
    [InlineData("2,x")]
    public async Task A_bad_parallel_list_is_refused(string list)
    {
        Assert.Equal(2, await Run("-m", SharedData.OracleModelPath, "-p", "8", "-n", "4", "--parallel", list));
        Assert.Contains("--parallel", _err.ToString());
    }

    [Fact]
    public async Task Q8_head_halves_the_head_bytes_and_the_table_names_it()
    {
        Assert.Equal(0, await Run("-m", SharedData.OracleModelPath, "-p", "4", "-n", "2", "-r", "1", "-t", "1", "--lm-head", "q8"));
        string table = _out.ToString();
        Assert.Contains("lm-head q8", table);
        Assert.Matches("weights (memory|move)", table);
        Assert.Contains("pp4", table);
        Assert.Contains("tg2", table);
        Assert.Contains("GB/s measured", table);   // the probe ran
        long ternary = 4L * (256 * 256 + 2 * 128 * 256 + 256 * 256 + 3 * 512 * 256) / 4;
        double mb = (ternary + 128256L * 256 + 4L * 128256) / 1e6;
        Assert.Contains($"bytes per decoded token {mb.ToString("F1", System.Globalization.CultureInfo.InvariantCulture)} MB", table);
    }

    [Fact]
    public async Task Screened_head_reports_its_exact_rows_and_counts_their_bytes()
    {
        Assert.Equal(0, await Run("-m", SharedData.OracleModelPath, "-p", "4", "-n", "6", "-r", "2", "-t", "1", "--lm-head", "screened", "--json", "--no-probe"));
        using JsonDocument doc = JsonDocument.Parse(_out.ToString());
        JsonElement r = doc.RootElement;
        Assert.Equal("screened", r.GetProperty("lm_head").GetString());
        double rows = r.GetProperty("exact_rows_per_token").GetDouble();
        Assert.InRange(rows, 1, 128256 / 10);   // greedy: a few rows, never the whole head
        // int8 head + three per-row bound numbers + the exact F16 rows.
        long ternary = 4L * (256 * 256 + 2 * 128 * 256 + 256 * 256 + 3 * 512 * 256) / 4;
        long expected = ternary + 128256L * 256 + 12L * 128256 + (long)Math.Round(rows * 2 * 256);
        Assert.Equal(expected, r.GetProperty("bytes_per_decoded_token").GetInt64());
    }

    [Fact]
    public async Task Mapped_weights_are_named_in_the_report_and_stream_the_same_bytes()
    {
        Assert.Equal(0, await Run("-m", SharedData.OracleModelPath, "-p", "4", "-n", "2", "-r", "1", "-t", "2", "--weights", "mapped", "--json", "--no-probe"));
        using JsonDocument doc = JsonDocument.Parse(_out.ToString());
        JsonElement r = doc.RootElement;
        Assert.Equal("mapped", r.GetProperty("weights").GetString());
        long ternary = 4L * (256 * 256 + 2 * 128 * 256 + 256 * 256 + 3 * 512 * 256) / 4;
        Assert.Equal(ternary + 2L * 128256 * 256, r.GetProperty("bytes_per_decoded_token").GetInt64());
        Assert.NotEqual(0, await Run("-m", SharedData.OracleModelPath, "--weights", "disk"));
    }

    [Fact]
    public async Task Moved_weights_are_named_in_the_report_with_when_the_move_ended()
    {
        Assert.Equal(0, await Run("-m", SharedData.OracleModelPath, "-p", "4", "-n", "2", "-r", "1", "-t", "1", "--weights", "move", "--no-probe"));
        string table = _out.ToString();
        Assert.Contains("weights move", table);
        if (OperatingSystem.IsLinux())
            Assert.Matches(@"weights moved into memory (\d+\.\d\d s after loading|only in part by the end)", table);
    }

    [Fact]
    public void The_warm_up_waits_for_the_weight_move_so_repetitions_measure_moved_weights()
    {
        if (!BitNet.Inference.Memory.MappingMove.IsSupported) Assert.Skip("Linux only");
        using var model = BitNet.Inference.Model.BitNetModel.Load(SharedData.OracleModelPath,
            new BitNet.Inference.Model.ModelLoadOptions { Threads = 1, Storage = BitNet.Inference.Model.WeightStorage.Move });
        Assert.False(model.WeightMove.IsCompleted);   // nothing has run yet: the move starts after the first pass
        var phases = new List<string>();
        var progress = new SynchronousProgress<BitNet.Inference.Bench.BenchmarkProgress>(p => phases.Add(p.Phase));
        var report = BitNet.Inference.Bench.InferenceBenchmark.Run(model, "oracle", 0, 2, 1, 1, probeBandwidth: false, progress,
            TestContext.Current.CancellationToken);
        Assert.True(model.WeightMove.IsCompletedSuccessfully);
        Assert.True(model.MovedWeightBytes > 0);
        Assert.NotNull(report.WeightsMovedSeconds);
        int moving = phases.IndexOf("moving the weights into memory");
        Assert.True(moving > 0 && moving < phases.FindIndex(p => p.StartsWith("repetition", StringComparison.Ordinal)), string.Join(", ", phases));
    }

    private sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    [Fact]
    public async Task A_finished_move_is_reported_with_its_time_and_other_storages_report_none()
    {
        if (!BitNet.Inference.Memory.MappingMove.IsSupported) Assert.Skip("Linux only");
        using (var moving = BitNet.Inference.Model.BitNetModel.Load(SharedData.OracleModelPath,
            new BitNet.Inference.Model.ModelLoadOptions { Threads = 1, Storage = BitNet.Inference.Model.WeightStorage.Move }))
        {
            moving.StartWeightMove();
            await moving.WeightMove.WaitAsync(TimeSpan.FromMinutes(1), TestContext.Current.CancellationToken);
            var report = BitNet.Inference.Bench.InferenceBenchmark.Run(moving, "oracle", 0, 2, 1, 1, probeBandwidth: false, cancellationToken: TestContext.Current.CancellationToken);
            Assert.Equal("move", report.Weights);
            Assert.NotNull(report.WeightsMovedSeconds);
            Assert.InRange(report.WeightsMovedSeconds.Value, 0, 1);   // already moved when the runs began
        }
        using var mapped = BitNet.Inference.Model.BitNetModel.Load(SharedData.OracleModelPath,
            new BitNet.Inference.Model.ModelLoadOptions { Threads = 1, Storage = BitNet.Inference.Model.WeightStorage.Mapped });
        Assert.Null(BitNet.Inference.Bench.InferenceBenchmark.Run(mapped, "oracle", 0, 2, 1, 1, probeBandwidth: false, cancellationToken: TestContext.Current.CancellationToken).WeightsMovedSeconds);
    }

    [Fact]
    public async Task Missing_model_and_bad_counts_fail_with_a_message()
    {
        Assert.Equal(1, await Run("-m", "/nonexistent/model.gguf", "-p", "4"));
        Assert.Contains("not found", _err.ToString());
        Assert.Equal(2, await Run("-m", SharedData.OracleModelPath, "-p", "0"));
        Assert.Contains("-p and -r must be at least 1", _err.ToString());
        Assert.NotEqual(0, await Run("-m", SharedData.OracleModelPath, "--lm-head", "q4"));
    }

    [Fact]
    public async Task Unsupported_kernel_request_is_an_error_not_a_crash()
    {
        Assert.Equal(1, await Run("-m", SharedData.OracleModelPath, "-p", "2", "-n", "1", "-r", "1", "--kernel", "sse9", "--no-probe"));
        Assert.Contains("unknown kernel", _err.ToString());
    }
}
