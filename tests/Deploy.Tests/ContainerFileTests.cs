using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using BitNet.Deploy.Planning;

namespace BitNet.Deploy.Tests;

/// <summary>
/// Docker cannot run where this is built, so these tests read the container files and check that
/// they still agree with the projects: base images, stages, build arguments, the binaries' names
/// (each csproj's AssemblyName) and where the model lands (the path the deployment plan tells the host).
/// </summary>
public sealed partial class ContainerFileTests
{
    private static string RepoRoot([CallerFilePath] string file = "") => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));

    private static Dockerfile Read(string name) => Dockerfile.Parse(File.ReadAllText(Path.Combine(RepoRoot(), "containers", name)));

    private static string AssemblyName(string project) =>
        XDocument.Load(Path.Combine(RepoRoot(), project)).Descendants("AssemblyName").Single().Value;

    [Fact]
    public void Lambda_image_publishes_the_lambda_host_with_native_aot_as_bootstrap_on_provided_al2023()
    {
        var file = Read("Dockerfile.lambda");
        Assert.Equal(["build", "runtime"], file.Stages.Select(s => s.Name));
        Assert.Equal("public.ecr.aws/lambda/provided:al2023", file.Stages[^1].Image);
        Assert.Contains("MODEL_SOURCE", file.GlobalArgs);
        Assert.Contains(file.Stages[^1].Instructions, i => i is ("ARG", "MODEL_SOURCE"));

        var build = file.Stages[0];
        Assert.Contains(build.Instructions, i => i is ("ARG", "TARGETARCH"));
        AssertPublishesNative(build, "src/Hosts.Lambda/Hosts.Lambda.csproj", "\"$TARGETARCH\"");
        Assert.True(File.Exists(Path.Combine(RepoRoot(), "src/Hosts.Lambda/Hosts.Lambda.csproj")));
        Assert.Equal("bootstrap", AssemblyName("src/Hosts.Lambda/Hosts.Lambda.csproj"));

        // The launcher is installed as bootstrap, the builds beside it as bootstrap-x64v3/v4 (amd64).
        Assert.Contains(file.Stages[^1].Instructions, i => i.Keyword == "COPY" && i.Arguments == "--from=build --chmod=755 /out/ /var/runtime/");
        Assert.Contains(file.Stages[^1].Instructions, i => i.Keyword == "CMD");
        AssertModelBakedAt(file.Stages[^1], DeploymentPlanner.LambdaModelPath);
    }

    [Fact]
    public void Azure_image_runs_the_isolated_worker_under_the_functions_host_for_dotnet_10()
    {
        var file = Read("Dockerfile.azure");
        Assert.Equal(["build", "runtime"], file.Stages.Select(s => s.Name));
        Assert.Equal("mcr.microsoft.com/azure-functions/dotnet-isolated:4-dotnet-isolated10.0", file.Stages[^1].Image);
        string env = string.Join(' ', file.Stages[^1].Instructions.Where(i => i.Keyword == "ENV").Select(i => i.Arguments));
        Assert.Contains("AzureWebJobsScriptRoot=/home/site/wwwroot", env);
        Assert.Contains("FUNCTIONS_WORKER_RUNTIME=dotnet-isolated", env);
        Assert.Contains("AzureWebJobsDisableHomepage=true", env); // "/" belongs to the API

        // ReadyToRun comes from the project; the publish output (dll, functions.metadata, worker.config.json, host.json) is the app root.
        string project = "src/Hosts.AzureFunctions/Hosts.AzureFunctions.csproj";
        string publish = Assert.Single(file.Stages[0].Instructions, i => i.Keyword == "RUN" && i.Arguments.Contains("dotnet publish")).Arguments;
        Assert.Contains($"dotnet publish {project} -c Release -r linux-x64 -o /app", publish);
        Assert.Equal("true", XDocument.Load(Path.Combine(RepoRoot(), project)).Descendants("PublishReadyToRun").Single().Value);
        Assert.Contains($"test -f /app/{AssemblyName(project)}.dll", publish);
        foreach (string output in new[] { "functions.metadata", "worker.config.json", "host.json" })
            Assert.Contains($"test -f /app/{output}", publish);
        Assert.Contains(file.Stages[^1].Instructions, i => i is ("COPY", "--from=build /app/ /home/site/wwwroot/"));
        AssertModelBakedAt(file.Stages[^1], DeploymentPlanner.AzureModelPath);
    }

    [Fact]
    public void Server_image_runs_the_server_binary_with_a_health_check()
    {
        var file = Read("Dockerfile.server");
        Assert.Equal("mcr.microsoft.com/dotnet/runtime-deps:10.0", file.Stages[^1].Image);
        string binary = AssemblyName("src/Hosts.Server/Hosts.Server.csproj");
        Assert.Equal("bitnet-server", binary);
        AssertPublishesNative(file.Stages[0], "src/Hosts.Server/Hosts.Server.csproj", "\"${TARGETARCH:-amd64}\"");
        Assert.Contains(file.Stages[^1].Instructions, i => i.Keyword == "COPY" && i.Arguments == "--from=build --chmod=755 /out/ /usr/local/bin/");
        Assert.Contains(file.Stages[^1].Instructions, i => i.Keyword == "ENTRYPOINT" && i.Arguments.Contains($"/usr/local/bin/{binary}"));
        Assert.Contains(file.Stages[^1].Instructions, i => i.Keyword == "HEALTHCHECK" && i.Arguments.Contains("http://127.0.0.1:8080/health"));
        Assert.Contains(file.Stages[^1].Instructions, i => i is ("EXPOSE", "8080"));
    }

    [Theory]
    [InlineData("Dockerfile.lambda")]
    [InlineData("Dockerfile.azure")]
    [InlineData("Dockerfile.server")]
    public void Every_file_copied_from_the_build_context_exists(string name)
    {
        foreach (var instruction in Read(name).Stages.SelectMany(s => s.Instructions).Where(i => i.Keyword == "COPY" && !i.Arguments.Contains("--from=")))
        {
            string[] parts = instruction.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(p => !p.StartsWith("--")).ToArray();
            foreach (string source in parts[..^1])
                Assert.True(Path.Exists(Path.Combine(RepoRoot(), source)), $"{name}: COPY source '{source}' is not in the repository");
        }
    }

    [Theory]
    [InlineData("Dockerfile.lambda")]
    [InlineData("Dockerfile.azure")]
    [InlineData("Dockerfile.server")]
    public void Documented_build_commands_turn_provenance_off(string name)
    {
        // Each command is one `docker buildx build ... -f containers/X ...` line (with a continuation after it).
        string[] lines = File.ReadAllLines(Path.Combine(RepoRoot(), "containers", "README.md"));
        var builds = lines.Where(l => l.Contains("docker buildx build")).ToList();
        Assert.Contains(builds, l => l.Contains($"-f containers/{name}"));
        Assert.All(builds, l => Assert.Contains("--provenance=false", l));
        Assert.Contains("--provenance=false", File.ReadAllText(Path.Combine(RepoRoot(), "containers", name)));
    }

    [Fact]
    public void Compose_builds_the_server_image_mounts_the_model_cache_and_checks_health()
    {
        string compose = File.ReadAllText(Path.Combine(RepoRoot(), "containers", "compose.yaml"));
        Assert.Contains("dockerfile: containers/Dockerfile.server", compose);
        Assert.Contains("context: ..", compose);
        Assert.Contains(":/models/hf:ro", compose);
        Assert.Contains("http://127.0.0.1:8080/health", compose);
        Assert.Matches(@"memlock:\s+soft: -1\s+hard: -1", compose);
        Assert.Contains("IPC_LOCK", compose);
        Assert.Matches(@"cpus: \$\{BITNET_CPUS:-\d+\}", compose);
    }

    /// <summary>The build stage copies both scripts and publishes the project under its assembly name into /out.</summary>
    private static void AssertPublishesNative(Dockerfile.Stage build, string project, string arch)
    {
        Assert.Contains(build.Instructions, i => i is ("COPY", "containers/publish-native.sh containers/start-x64.sh containers/"));
        string publish = Assert.Single(build.Instructions, i => i.Keyword == "RUN" && i.Arguments.Contains("publish-native.sh")).Arguments;
        Assert.Equal($"sh containers/publish-native.sh {project} {AssemblyName(project)} /out {arch}", publish);
    }

    private static void AssertModelBakedAt(Dockerfile.Stage stage, string path)
    {
        Assert.Contains(stage.Instructions, i => i.Keyword == "ADD" && i.Arguments.EndsWith($"${{MODEL_SOURCE}} {path}") && i.Arguments.Contains("--chmod=644"));
        Assert.Contains(stage.Instructions, i => i.Keyword == "ENV" && i.Arguments.Contains($"BITNET_MODEL={path}"));
    }

    /// <summary>Just enough Dockerfile parsing: continuations joined, comments dropped, stages split at FROM.</summary>
    private sealed partial record Dockerfile(IReadOnlyList<string> GlobalArgs, IReadOnlyList<Dockerfile.Stage> Stages)
    {
        public sealed record Instruction(string Keyword, string Arguments)
        {
            public void Deconstruct(out string keyword, out string arguments) => (keyword, arguments) = (Keyword, Arguments);
        }

        public sealed record Stage(string Image, string? Name, List<Instruction> Instructions);

        public static Dockerfile Parse(string text)
        {
            var logical = new List<string>();
            string pending = "";
            foreach (string raw in text.Replace("\r", "").Split('\n'))
            {
                string line = raw.Trim();
                if (line.StartsWith('#') || (line.Length == 0 && pending.Length == 0))
                    continue;
                if (line.EndsWith('\\'))
                {
                    pending += line[..^1].Trim() + " ";
                    continue;
                }
                logical.Add((pending + line).Trim());
                pending = "";
            }

            var globalArgs = new List<string>();
            var stages = new List<Stage>();
            foreach (string instruction in logical.Where(l => l.Length > 0))
            {
                var match = InstructionPattern().Match(instruction);
                string keyword = match.Groups[1].Value.ToUpperInvariant();
                string arguments = Regex.Replace(match.Groups[2].Value, @"\s+", " ").Trim();
                if (keyword == "FROM")
                {
                    var from = FromPattern().Match(arguments);
                    stages.Add(new Stage(from.Groups[1].Value, from.Groups[2].Success ? from.Groups[2].Value : null, []));
                }
                else if (stages.Count == 0 && keyword == "ARG")
                    globalArgs.Add(arguments.Split('=')[0]);
                else
                    stages[^1].Instructions.Add(new Instruction(keyword, arguments));
            }
            return new Dockerfile(globalArgs, stages);
        }

        [GeneratedRegex(@"^(\w+)\s+(.*)$", RegexOptions.Singleline)] private static partial Regex InstructionPattern();
        [GeneratedRegex(@"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", RegexOptions.IgnoreCase)] private static partial Regex FromPattern();
    }
}
