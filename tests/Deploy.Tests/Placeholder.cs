namespace BitNet.Deploy.Tests;
