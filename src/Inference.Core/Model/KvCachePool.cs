namespace BitNet.Inference.Model;

/// <summary>
/// The paged KV cache: one pool of fixed-size blocks shared by every sequence. A block holds
/// <see cref="BlockTokens"/> consecutive positions of one sequence, for every layer: per layer, keys
/// and values head-major [kv head][slot][head_dim], so attention streams one KV head's rows of a block
/// contiguously. Sequences (<see cref="KvSequence"/>) take blocks as they grow and return them when they
/// end. Blocks of prompt positions can be registered after the prefix that comes before them: a full
/// block is found by a hash of the whole prefix that ends with it, and a later sequence with the same
/// prefix takes it instead of evaluating it again (reference counted); the first positions of any
/// registered block (a prompt's last, partly filled block, or a block where two prompts part) can be
/// copied into a block of the later sequence's own. A registered block whose last user ended stays
/// cached until the space is needed.
/// Thread-safe; the forward pass reads and writes the storage without the lock (each block belongs to
/// the sequences that hold it).
/// </summary>
public sealed class KvCachePool
{
    /// <summary>Positions per block. 32 keeps a 512-token sequence's unused tail under 6 % and one KV head's
    /// run within a block at 8 KB (head_dim 128), long enough for attention's row loops to stream.</summary>
    public const int DefaultBlockTokens = 32;

    private readonly object _gate = new();
    private readonly int[] _references;
    private readonly int[] _free;               // stack of blocks holding nothing
    private int _freeCount;
    // Registered blocks whose references fell to 0, least recently released first (an intrusive list).
    private readonly int[] _cachedPrevious, _cachedNext;
    private int _cachedFirst = -1, _cachedLast = -1, _cachedCount;
    // Prefix registry: a full block's key is the hash of every token up to its end. Each registered block
    // keeps its registered tokens, the block before it and that block's prefix hash, to check a hit exactly.
    private readonly Dictionary<ulong, int> _byPrefix;
    private readonly ulong[] _prefixHash, _parentHash;
    private readonly int[] _registeredTokens;   // 0: not registered
    private readonly int[] _parent;
    private readonly int[] _blockTokens;

    /// <param name="blocks">Blocks in the pool.</param>
    /// <param name="blockTokens">Positions per block.</param>
    public KvCachePool(ModelConfig config, int blocks, int blockTokens = DefaultBlockTokens)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfLessThan(blocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockTokens, 1);
        long perLayer = (long)blocks * blockTokens * config.KvDim;
        if (perLayer > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(blocks), blocks, $"{blocks} blocks of {blockTokens} positions exceed one layer's largest array");
        Config = config;
        BlockCount = blocks;
        BlockTokens = blockTokens;
        Keys = new Half[config.LayerCount][];
        Values = new Half[config.LayerCount][];
        for (int l = 0; l < config.LayerCount; l++)
        {
            Keys[l] = new Half[perLayer];
            Values[l] = new Half[perLayer];
        }
        _references = new int[blocks];
        _free = new int[blocks];
        for (int b = 0; b < blocks; b++) _free[b] = blocks - 1 - b;   // block 0 is taken first
        _freeCount = blocks;
        _cachedPrevious = new int[blocks];
        _cachedNext = new int[blocks];
        _byPrefix = new Dictionary<ulong, int>(blocks);
        _prefixHash = new ulong[blocks];
        _parentHash = new ulong[blocks];
        _registeredTokens = new int[blocks];
        _parent = new int[blocks];
        _blockTokens = new int[(long)blocks * blockTokens];
    }

    /// <summary>Bytes one cached position takes: keys and values of every layer, F16.</summary>
    public static long BytesPerToken(ModelConfig config) => 2L * 2 * config.LayerCount * config.KvDim;

    /// <summary>The most positions a pool of <paramref name="blockTokens"/>-position blocks can hold for this model:
    /// each layer's keys (and values) are one array, of at most <see cref="Array.MaxLength"/> elements.</summary>
    public static long MaxTokens(ModelConfig config, int blockTokens = DefaultBlockTokens)
    {
        ArgumentNullException.ThrowIfNull(config);
        return Array.MaxLength / ((long)blockTokens * config.KvDim) * blockTokens;
    }

    /// <summary>Blocks of <paramref name="blockTokens"/> positions that fit <paramref name="bytes"/> (at least one).</summary>
    public static int BlocksForBytes(ModelConfig config, long bytes, int blockTokens = DefaultBlockTokens) =>
        (int)Math.Clamp(bytes / (BytesPerToken(config) * blockTokens), 1, int.MaxValue);

    public ModelConfig Config { get; }
    public int BlockCount { get; }
    public int BlockTokens { get; }
    /// <summary>Bytes of one block.</summary>
    public long BlockBytes => BytesPerToken(Config) * BlockTokens;
    /// <summary>Per layer, the keys of every block: block b's KV head h, slot i at ((b·KvHeadCount + h)·BlockTokens + i)·HeadDim.</summary>
    internal Half[][] Keys { get; }
    internal Half[][] Values { get; }

    /// <summary>Blocks held by at least one sequence.</summary>
    public int UsedBlocks { get { lock (_gate) return BlockCount - _freeCount - _cachedCount; } }
    /// <summary>Blocks a sequence can take: empty ones and cached prefixes nobody holds.</summary>
    public int FreeBlocks { get { lock (_gate) return _freeCount + _cachedCount; } }
    /// <summary>Of <see cref="FreeBlocks"/>, those that still hold a registered prefix.</summary>
    public int CachedBlocks { get { lock (_gate) return _cachedCount; } }

    /// <summary>Where block <paramref name="block"/>'s rows of KV head <paramref name="kvHead"/> start in a layer's array.</summary>
    internal int Offset(int block, int kvHead) => (block * Config.KvHeadCount + kvHead) * BlockTokens * Config.HeadDim;

    /// <summary>Take an empty block, or else the least recently released cached one (forgetting its prefix); false when every block is held.</summary>
    public bool TryTake(out int block)
    {
        lock (_gate)
        {
            if (_freeCount > 0)
                block = _free[--_freeCount];
            else if (_cachedFirst >= 0)
            {
                block = _cachedFirst;
                Uncache(block);
                Unregister(block);
            }
            else
            {
                block = -1;
                return false;
            }
            _references[block] = 1;
            return true;
        }
    }

    /// <summary>Drop one reference; a block nobody holds becomes free, or cached when it holds a registered prefix.</summary>
    public void Release(int block)
    {
        lock (_gate)
        {
            if (_references[block] <= 0) throw new InvalidOperationException($"block {block} is not held");
            if (--_references[block] > 0) return;
            if (_registeredTokens[block] > 0)
            {
                _cachedPrevious[block] = _cachedLast;
                _cachedNext[block] = -1;
                if (_cachedLast >= 0) _cachedNext[_cachedLast] = block; else _cachedFirst = block;
                _cachedLast = block;
                _cachedCount++;
            }
            else
                _free[_freeCount++] = block;
        }
    }

    /// <summary>References held on <paramref name="block"/> (tests look at it).</summary>
    internal int References(int block) { lock (_gate) return _references[block]; }

    /// <summary>
    /// The hash of a prefix that extends the prefix hashed as <paramref name="parentHash"/> (0 for none) by
    /// <paramref name="tokens"/>. FNV-1a over the token ids, chained.
    /// </summary>
    public static ulong PrefixHash(ulong parentHash, ReadOnlySpan<int> tokens)
    {
        ulong h = parentHash ^ 0xcbf29ce484222325UL;
        foreach (int t in tokens)
        {
            h = (h ^ (uint)t) * 0x100000001b3UL;
            h ^= h >> 29;
        }
        return h == 0 ? 1 : h;
    }

    /// <summary>
    /// Find the registered full block for the prefix <paramref name="hash"/> whose own positions hold
    /// <paramref name="tokens"/> and which follows <paramref name="parent"/> (−1 for the first block), and
    /// take a reference on it. −1 when there is none.
    /// </summary>
    public int TryShare(ulong hash, int parent, ReadOnlySpan<int> tokens)
    {
        lock (_gate)
        {
            int block = Find(hash, parent, tokens);
            if (block >= 0) Pin(block);
            return block;
        }
    }

    /// <summary>Like <see cref="TryShare"/> without taking a reference: whether the cache holds the block now.</summary>
    public int Find(ulong hash, int parent, ReadOnlySpan<int> tokens)
    {
        lock (_gate)
        {
            if (!_byPrefix.TryGetValue(hash, out int block)) return -1;
            if (_parent[block] != parent || !tokens.SequenceEqual(RegisteredTokens(block)))
                return -1;
            return block;
        }
    }

    /// <summary>
    /// The registered block that follows <paramref name="parent"/> (−1 for the first block) after the prefix
    /// hashed as <paramref name="parentHash"/> and whose registered positions begin with the longest run of
    /// <paramref name="tokens"/>: that run's length in <paramref name="length"/>, −1 (and 0) when no block
    /// begins with the first token. With <paramref name="pin"/>, a reference is taken on the block, to be
    /// released after its positions were copied (<see cref="CopyPositions"/>).
    /// </summary>
    public int LongestRun(ulong parentHash, int parent, ReadOnlySpan<int> tokens, bool pin, out int length)
    {
        lock (_gate)
        {
            int best = -1;
            length = 0;
            if (tokens.IsEmpty) return -1;
            for (int b = 0; b < BlockCount; b++)
            {
                if (_registeredTokens[b] <= length || _parent[b] != parent || _parentHash[b] != parentHash) continue;
                int run = tokens.CommonPrefixLength(RegisteredTokens(b));
                if (run > length) (best, length) = (b, run);
            }
            if (best >= 0 && pin) Pin(best);
            return best;
        }
    }

    private void Pin(int block)
    {
        if (_references[block] == 0) Uncache(block);
        _references[block]++;
    }

    private ReadOnlySpan<int> RegisteredTokens(int block) => _blockTokens.AsSpan(block * BlockTokens, _registeredTokens[block]);

    /// <summary>
    /// Offer the first positions of <paramref name="block"/>, which hold <paramref name="tokens"/> evaluated as
    /// prompt positions in multi-token chunks, for sharing after the prefix hashed as
    /// <paramref name="parentHash"/> that ends with block <paramref name="parent"/> (−1 for none). A block's
    /// registered positions may grow as its prompt is evaluated, never change. A full block is also found by
    /// its prefix hash (<see cref="TryShare"/>) unless another block already holds that prefix.
    /// </summary>
    /// <returns>A full block's prefix hash (<see cref="PrefixHash"/> of <paramref name="parentHash"/> and
    /// <paramref name="tokens"/>), the next block's parent hash; 0 while the block is not full.</returns>
    public ulong Register(int block, ulong parentHash, int parent, ReadOnlySpan<int> tokens)
    {
        if (tokens.IsEmpty || tokens.Length > BlockTokens) throw new ArgumentException($"a block holds 1 to {BlockTokens} tokens", nameof(tokens));
        lock (_gate)
        {
            int registered = _registeredTokens[block];
            if (registered > 0 && (_parent[block] != parent || _parentHash[block] != parentHash
                || registered > tokens.Length || !tokens.StartsWith(RegisteredTokens(block))))
                throw new InvalidOperationException($"block {block} is registered for other positions");
            _parent[block] = parent;
            _parentHash[block] = parentHash;
            tokens.CopyTo(_blockTokens.AsSpan(block * BlockTokens, tokens.Length));
            _registeredTokens[block] = tokens.Length;
            if (tokens.Length < BlockTokens)
                return 0;
            if (registered < BlockTokens)
            {
                ulong hash = PrefixHash(parentHash, tokens);
                _prefixHash[block] = hash;
                _byPrefix.TryAdd(hash, block);   // a prefix already registered keeps its first block
            }
            return _prefixHash[block];
        }
    }

    /// <summary>
    /// Copy the first <paramref name="count"/> positions of <paramref name="from"/> (keys and values of every
    /// layer) into <paramref name="to"/>. Neither block may be written meanwhile.
    /// </summary>
    public void CopyPositions(int from, int to, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, BlockTokens);
        int run = count * Config.HeadDim;
        for (int l = 0; l < Config.LayerCount; l++)
            for (int h = 0; h < Config.KvHeadCount; h++)
            {
                Array.Copy(Keys[l], Offset(from, h), Keys[l], Offset(to, h), run);
                Array.Copy(Values[l], Offset(from, h), Values[l], Offset(to, h), run);
            }
    }

    private void Unregister(int block)
    {
        if (_registeredTokens[block] == 0) return;
        if (_registeredTokens[block] == BlockTokens && _byPrefix.TryGetValue(_prefixHash[block], out int owner) && owner == block)
            _byPrefix.Remove(_prefixHash[block]);
        _registeredTokens[block] = 0;
    }

    private void Uncache(int block)
    {
        int previous = _cachedPrevious[block], next = _cachedNext[block];
        if (previous >= 0) _cachedNext[previous] = next; else _cachedFirst = next;
        if (next >= 0) _cachedPrevious[next] = previous; else _cachedLast = previous;
        _cachedCount--;
    }
}

/// <summary>
/// One sequence's positions in a <see cref="KvCachePool"/>: the blocks it holds, in position order.
/// Not thread-safe: one owner at a time.
/// </summary>
public sealed class KvSequence
{
    private readonly int[] _blocks;

    /// <param name="capacity">The most positions the sequence may reach.</param>
    public KvSequence(KvCachePool pool, int capacity)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Pool = pool;
        Capacity = capacity;
        _blocks = new int[(capacity + pool.BlockTokens - 1) / pool.BlockTokens];
    }

    public KvCachePool Pool { get; }
    /// <summary>The most positions the sequence may reach.</summary>
    public int Capacity { get; }
    /// <summary>Positions whose keys and values are cached; the next token goes at this position.</summary>
    public int Length { get; internal set; }
    /// <summary>Blocks held.</summary>
    public int BlockCount { get; private set; }
    /// <summary>The block holding position p is Blocks[p / BlockTokens].</summary>
    internal ReadOnlySpan<int> Blocks => _blocks.AsSpan(0, BlockCount);
    internal int Block(int index) => _blocks[index];

    /// <summary>Count <paramref name="positions"/> more positions as cached (after a step wrote them into reserved blocks).</summary>
    public void Advance(int positions)
    {
        if (positions < 0 || Length + positions > BlockCount * Pool.BlockTokens)
            throw new ArgumentOutOfRangeException(nameof(positions), positions, "the sequence's reserved blocks do not hold that many more positions");
        Length += positions;
    }

    /// <summary>Blocks still to take before positions up to <paramref name="length"/> fit.</summary>
    public int BlocksNeeded(int length) => Math.Max(0, (length + Pool.BlockTokens - 1) / Pool.BlockTokens - BlockCount);

    /// <summary>Take blocks until positions up to <paramref name="length"/> fit; false (nothing taken) when the pool has too few.</summary>
    public bool TryReserve(int length)
    {
        if (length > Capacity) throw new Generation.ContextLengthExceededException(Length, length - Length, Capacity);
        int needed = BlocksNeeded(length);
        if (needed == 0) return true;
        if (Pool.FreeBlocks < needed) return false;
        for (int i = 0; i < needed; i++)
        {
            if (!Pool.TryTake(out int block))
            {
                Truncate(Length);   // another sequence took the last ones meanwhile: give back what was taken
                return false;
            }
            _blocks[BlockCount++] = block;
        }
        return true;
    }

    /// <summary>Append a shared block (already referenced for this sequence) holding the next BlockTokens positions.</summary>
    internal void AppendShared(int block)
    {
        if (Length != BlockCount * Pool.BlockTokens) throw new InvalidOperationException("shared blocks only follow full blocks");
        _blocks[BlockCount++] = block;
        Length += Pool.BlockTokens;
    }

    /// <summary>Keep the first <paramref name="length"/> positions and return the blocks past them.</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        int keep = (length + Pool.BlockTokens - 1) / Pool.BlockTokens;
        // The last blocks first: a cached prefix's later blocks are then reused before its first ones.
        while (BlockCount > keep) Pool.Release(_blocks[--BlockCount]);
        Length = Math.Min(Length, length);
    }

    /// <summary>Return every block.</summary>
    public void Clear() => Truncate(0);
}
