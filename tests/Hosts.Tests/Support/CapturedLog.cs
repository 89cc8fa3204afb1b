using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace BitNet.Hosts.Tests.Support;

/// <summary>Every log entry the app writes, as a console would show it: the message, then the exception (stack trace included) if one was logged.</summary>
internal sealed class CapturedLog : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _entries = new();

    public IReadOnlyList<string> Entries => [.. _entries];

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturedLog log, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            log._entries.Enqueue($"{logLevel}: {category}: {formatter(state, exception)}{(exception is null ? "" : Environment.NewLine + exception)}");
    }
}
