namespace BitNet.Cli.Tests;
