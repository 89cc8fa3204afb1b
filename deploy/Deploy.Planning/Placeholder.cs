namespace BitNet.Deploy.Planning;
