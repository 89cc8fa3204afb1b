namespace BitNet.Hosts.Http;
