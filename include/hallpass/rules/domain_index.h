// The compiled domain index of a rule set: canonical names -> the ids of the sets (rule `hosts:`,
// rule `domains:`, lists) that hold them, asked per request "which sets hold this host, or one of
// its parent domains". Built once on the loader thread, then immutable and read by every worker
// without locks. Names go in as canonical strings (domain_list.h, uri.h); the index keeps only
// their 64-bit hashes, so it cannot list its names (explain re-reads the list file for that).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace hallpass {

class Pacer;

// Layout and costs (see domain_index.cpp for why):
//  - One open-addressing table of 12-byte slots (64-bit name hash + 32-bit value) at a load of
//    about 0.8: ~15 bytes per distinct name, about 15 MB for 1M names. A value is the set id
//    itself when the name is in one set (the common case), or an offset into shared, deduplicated
//    posting lists of set ids.
//  - On average 3 adjacent slots (mostly one cache line) per probe; one probe per label suffix of
//    the host, the probes of one host prefetched together. The hashes of all suffixes come from
//    one right-to-left pass that hashes each label once (domain_index.cpp).
//  - Hash-only storage means a name that is not in the index matches one that is with probability
//    about size() / 2^64 per probe: 5.4e-14 for 1M names, i.e. about one false match in 4.6e12
//    lookups of 4 labels. The hash is XXH3 with a random per-index seed, so a host colliding with
//    a listed name cannot be precomputed from the public lists (what would matter is a crafted
//    host passing as a name on an allow list). Two listed names colliding with each other
//    (probability ~2.7e-8 at 1M) would share their sets.
//  - A table of 2 MiB or more is aligned to 2 MiB and madvise(MADV_HUGEPAGE)d: with 4 KiB pages
//    a random probe into 15 MB also misses the TLB.
//  - Building holds 12 bytes per add() until build() returns, plus the table: about 27 MB at the
//    peak for 1M names (with reserve()), 15 MB after.
class DomainIndex {
  public:
    // Set ids are the caller's: any value below kMaxSetId. A name added to several sets is stored
    // once with all of them.
    static constexpr uint32_t kMaxSetId = 0x7fffffffu;

    class Builder {
      public:
        Builder();  // picks the random hash seed

        // `canonical_name` as produced by domain_list / canonicalize_host (lower case, no
        // trailing dot); the string is hashed at once and not kept. Duplicates are fine.
        // Requires set_id < kMaxSetId and a non-empty name.
        void add(std::string_view canonical_name, uint32_t set_id);

        // Optional: room for `adds` add() calls, so a big list does not grow the buffer by
        // doubling (which briefly holds both copies).
        void reserve(size_t adds) { entries_.reserve(adds); }

        // Distinct (name, set) pairs are sorted and deduplicated; the Builder is spent. `pacer`
        // (a reload's) is given a turn every few microseconds of work.
        DomainIndex build(Pacer* pacer = nullptr) &&;

        size_t pending() const { return entries_.size(); }  // adds so far, duplicates included

      private:
        struct Entry {  // 12 bytes, not 16: this buffer is the peak of a 1M-name reload
            uint32_t hash_hi;
            uint32_t hash_lo;
            uint32_t set_id;
            uint64_t hash() const { return (static_cast<uint64_t>(hash_hi) << 32) | hash_lo; }
        };
        uint64_t seed_;
        std::vector<Entry> entries_;
    };

    DomainIndex() = default;  // empty: matches nothing

    // Calls fn(set_id, matched_name) for each set holding `host` itself, set ids ascending.
    // matched_name is `host` (a view into the caller's string). fn may return void, or bool:
    // false stops the walk.
    template <class Fn>
    void for_each_exact(std::string_view host, Fn&& fn) const {
        visit(host, fn);
    }

    // Calls fn(set_id, matched_suffix) for each set holding `host` or one of its parent domains:
    // the label suffixes from the longest (the host itself) to the shortest (`a.b.c` asks
    // `a.b.c`, `b.c`, `c`), so the first call is the most specific match. Suffixes align at
    // labels: "ample.com" never matches "example.com". matched_suffix is a view into `host`.
    // For names only: an IPv4 literal's "suffixes" are meaningless (use for_each_exact).
    // fn may return void, or bool: false stops the walk. Suffixes of more than kMaxLabels
    // labels (longer than any DNS name) are not looked up.
    template <class Fn>
    void for_each_suffix(std::string_view host, Fn&& fn) const {
        SuffixLookup lookup;
        start_suffix_lookup(host, lookup);
        for_each_suffix(host, lookup, fn);
    }

    // The same walk in two steps, so the caller can do other work while the table's cache lines
    // arrive: start_suffix_lookup() hashes every suffix and prefetches its slots; the
    // for_each_suffix() overload with the same `host` then reads them.
    static constexpr size_t kMaxLabels = 127;  // a 253-byte name has at most 127 labels
    struct SuffixLookup {
        size_t count = 0;  // suffixes, longest last
        uint64_t hashes[kMaxLabels];
        uint32_t starts[kMaxLabels];
    };
    void start_suffix_lookup(std::string_view host, SuffixLookup& lookup) const;
    template <class Fn>
    void for_each_suffix(std::string_view host, const SuffixLookup& lookup, Fn&& fn) const {
        for (size_t i = lookup.count; i-- > 0;) {
            const uint64_t hash = lookup.hashes[i];
            const uint32_t value = probe(slots_.get() + home_of(hash), hash);
            if (!visit_value(value, host.substr(lookup.starts[i]), fn)) return;
        }
    }

    // True when `host` itself is in any set: the cheapest question.
    bool contains(std::string_view host) const { return find(host) != kAbsent; }

    size_t size() const { return size_; }  // distinct names
    bool empty() const { return size_ == 0; }
    size_t memory_bytes() const;  // heap bytes held (table and posting lists)

  private:
    // A slot's value: the set id, or kPostingBit | offset into postings_ where the list's length
    // is stored, followed by its ids. kAbsent is returned by find() for a name not present.
    static constexpr uint32_t kPostingBit = 0x80000000u;
    static constexpr uint32_t kAbsent = 0xffffffffu;

    struct Slot {
        uint32_t hash_lo;  // the 64-bit hash split in two, so a slot is 12 bytes, not 16
        uint32_t hash_hi;
        uint32_t value;
    };

    uint32_t find(std::string_view name) const;  // the slot's value or kAbsent
    static uint32_t probe(const Slot* home, uint64_t hash);

    // Multiply-shift range reduction (Lemire): monotone in `hash`, which the sorted layout needs.
    uint64_t home_of(uint64_t hash) const {
        return static_cast<uint64_t>((static_cast<unsigned __int128>(hash) * buckets_) >> 64);
    }

    template <class Fn>
    bool visit(std::string_view name, Fn& fn) const {
        return visit_value(find(name), name, fn);
    }

    template <class Fn>
    bool visit_value(uint32_t value, std::string_view name, Fn& fn) const {
        if (value == kAbsent) return true;
        if ((value & kPostingBit) == 0) return call(fn, value, name);
        const uint32_t* ids = postings_.data() + (value & ~kPostingBit);
        const uint32_t count = *ids++;
        for (uint32_t i = 0; i < count; ++i) {
            if (!call(fn, ids[i], name)) return false;
        }
        return true;
    }

    template <class Fn>
    static bool call(Fn& fn, uint32_t set_id, std::string_view name) {
        if constexpr (std::is_same_v<std::invoke_result_t<Fn&, uint32_t, std::string_view>, bool>) {
            return fn(set_id, name);
        } else {
            fn(set_id, name);
            return true;
        }
    }

    // The table is allocated by hand, not in a vector: a big one is aligned to 2 MiB and asks for
    // transparent huge pages, so a lookup's TLB miss does not add a page walk to its cache miss.
    struct Free {
        void operator()(Slot* p) const { std::free(p); }
    };
    static std::unique_ptr<Slot[], Free> allocate_slots(size_t count);  // zeroed

    uint64_t seed_ = 0;
    uint64_t buckets_ = 0;  // home positions are [0, buckets_); slots_ has an overflow tail
    size_t size_ = 0;
    size_t slot_count_ = 0;
    std::unique_ptr<Slot[], Free> slots_;
    std::vector<uint32_t> postings_;
};

}  // namespace hallpass
