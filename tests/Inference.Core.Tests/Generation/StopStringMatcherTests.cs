using BitNet.Inference.Generation;

namespace BitNet.Inference.Tests.Generation;

public class StopStringMatcherTests
{
    [Fact]
    public void Text_that_may_start_a_stop_string_is_held_back_until_it_cannot()
    {
        var m = new StopStringMatcher(["END"]);
        Assert.Equal("abc ", m.Push("abc E", out bool stopped));
        Assert.False(stopped);
        Assert.Equal("", m.Push("N", out stopped));
        Assert.False(stopped);
        Assert.Equal("ENx", m.Push("x", out stopped));
        Assert.False(stopped);
    }

    [Fact]
    public void A_stop_string_split_over_pieces_is_never_emitted_and_ends_the_stream()
    {
        var m = new StopStringMatcher(["\n\nUser:"]);
        Assert.Equal("Sure", m.Push("Sure\n", out _));
        Assert.Equal("", m.Push("\nUs", out _));
        Assert.Equal("", m.Push("er: more", out bool stopped));
        Assert.True(stopped);
    }

    [Fact]
    public void The_earliest_of_several_stop_strings_wins_and_text_before_it_is_kept()
    {
        var m = new StopStringMatcher(["bb", "a"]);
        Assert.Equal("xx", m.Push("xxabb", out bool stopped));
        Assert.True(stopped);
        Assert.Equal("a", m.Matched);
    }

    [Fact]
    public void The_matched_stop_string_is_named_only_once_one_completes()
    {
        var m = new StopStringMatcher(["END", "ENDING"]);
        m.Push("the EN", out _);
        Assert.Null(m.Matched);
        m.Push("D", out bool stopped);
        Assert.True(stopped);
        Assert.Equal("END", m.Matched);
    }

    [Fact]
    public void Without_stop_strings_text_passes_straight_through_and_flush_returns_the_held_tail()
    {
        Assert.Equal("abc", new StopStringMatcher([]).Push("abc", out _));
        var m = new StopStringMatcher(["xyz"]);
        Assert.Equal("a", m.Push("axy", out _));
        Assert.Equal("xy", m.Flush());
    }
}
