namespace BitNet.Hosts.Tests;
