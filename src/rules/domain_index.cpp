// DomainIndex: a hash-only, immutable open-addressing table built in one sort. Entries are placed
// in ascending hash order at max(home, previous + 1) with home = hash * buckets / 2^64, so every
// run of slots stays sorted (the layout Robin Hood hashing converges to, built without moves) and
// a lookup stops at the first slot holding a larger hash or nothing.
#include "hallpass/rules/domain_index.h"

#include "hallpass/rules/pacer.h"

// The hash is inlined: a call into libxxhash per label suffix cost more than hashing the
// 5-20 bytes of one.
#define XXH_INLINE_ALL
#include <sys/mman.h>
#include <xxhash.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <map>
#include <new>
#include <random>

namespace hallpass {

namespace {

// Home slots per distinct name, 5/4: at a load of 0.8 a probe reads 3 adjacent 12-byte slots on
// average (simulated for 1M names: 2.99, longest displacement 26; sorted runs end misses as
// early), mostly one cache line, at 15 bytes per name. The cost of a lookup is the cache miss,
// not the slots, so a sparser table would buy little for its memory.
uint64_t buckets_for(uint64_t names) { return std::max<uint64_t>(1, names + names / 4); }

// A name's hash is chained over its labels from the right: h(label.parent) =
// XXH3(label, seed = h(parent)), h(no labels) = the index's seed. A host's label suffixes are then
// hashed in one pass over its bytes, each label once, instead of once per suffix it is part of.
// Hash 0 marks an empty slot, so no name may hash to it; folding it onto 1 costs nothing but one
// more (harmless, as rare as any) collision.
uint64_t chain(std::string_view label, uint64_t parent) {
    return XXH3_64bits_withSeed(label.data(), label.size(), parent);
}

uint64_t folded(uint64_t hash) { return hash == 0 ? 1 : hash; }

// Calls fn(label_start, chained_hash) for each label suffix of `name`, shortest first, for at
// most `max_labels` of them.
template <class Fn>
void for_each_label_hash(std::string_view name, uint64_t seed, size_t max_labels, Fn&& fn) {
    uint64_t hash = seed;
    size_t end = name.size();
    for (size_t n = 0; n < max_labels; ++n) {
        const void* dot = end == 0 ? nullptr : memrchr(name.data(), '.', end);
        const size_t begin =
            dot ? static_cast<size_t>(static_cast<const char*>(dot) - name.data()) + 1 : 0;
        hash = chain(name.substr(begin, end - begin), hash);
        fn(begin, hash);
        if (begin == 0) return;
        end = begin - 1;
    }
}

uint64_t hash_name(std::string_view name, uint64_t seed) {
    uint64_t hash = seed;
    for_each_label_hash(name, seed, SIZE_MAX, [&hash](size_t, uint64_t h) { hash = h; });
    return folded(hash);
}

uint64_t random_seed() {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device();
}

}  // namespace

std::unique_ptr<DomainIndex::Slot[], DomainIndex::Free> DomainIndex::allocate_slots(size_t count) {
    constexpr size_t kHugePage = 2u << 20;
    const size_t bytes = count * sizeof(Slot);
    void* p = nullptr;
    if (bytes >= kHugePage) {
        const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
        p = std::aligned_alloc(kHugePage, rounded);
        // Advice only: where transparent huge pages are off ("never") this fails or does nothing,
        // and the table works the same on 4 KiB pages.
        if (p != nullptr) (void)madvise(p, rounded, MADV_HUGEPAGE);
    } else {
        p = std::malloc(bytes);
    }
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, bytes);  // hash 0: an empty slot
    return std::unique_ptr<Slot[], Free>(static_cast<Slot*>(p));
}

DomainIndex::Builder::Builder() : seed_(random_seed()) {}

void DomainIndex::Builder::add(std::string_view canonical_name, uint32_t set_id) {
    assert(!canonical_name.empty());
    assert(set_id < kMaxSetId);
    const uint64_t hash = hash_name(canonical_name, seed_);
    entries_.push_back({static_cast<uint32_t>(hash >> 32), static_cast<uint32_t>(hash), set_id});
}

// Sorts by (hash, set id) in place in pieces a pacer can come between: the hashes are uniform,
// so an in-place partition by their top byte (American flag sort) leaves 256 buckets of about
// n/256 entries, each then sorted on its own (1M names: ~4k entries, a fraction of a ms each).
template <class Entry>
void sort_entries(std::vector<Entry>& entries, Pacer& pacer) {
    const auto less = [](const Entry& a, const Entry& b) {
        return a.hash() != b.hash() ? a.hash() < b.hash() : a.set_id < b.set_id;
    };
    const auto bucket_of = [](const Entry& e) { return e.hash_hi >> 24; };
    size_t count[256] = {};
    for (const Entry& e : entries) ++count[bucket_of(e)];
    size_t start[257], next[256];
    start[0] = 0;
    for (size_t b = 0; b < 256; ++b) {
        start[b + 1] = start[b] + count[b];
        next[b] = start[b];
    }
    for (size_t b = 0; b < 256; ++b) {
        while (next[b] < start[b + 1]) {
            const uint32_t home = bucket_of(entries[next[b]]);
            if (home == b) {
                ++next[b];
            } else {
                std::swap(entries[next[b]], entries[next[home]++]);
            }
            pacer.pace();
        }
    }
    for (size_t b = 0; b < 256; ++b) {
        std::sort(entries.begin() + static_cast<ptrdiff_t>(start[b]),
                  entries.begin() + static_cast<ptrdiff_t>(start[b + 1]), less);
        pacer.pace_now();
    }
}

DomainIndex DomainIndex::Builder::build(Pacer* pacer) && {
    Pacer off;
    Pacer& pace = pacer ? *pacer : off;
    std::vector<Entry> entries = std::move(entries_);
    sort_entries(entries, pace);
    entries.erase(std::unique(entries.begin(), entries.end(),
                              [](const Entry& a, const Entry& b) {
                                  return a.hash() == b.hash() && a.set_id == b.set_id;
                              }),
                  entries.end());

    DomainIndex index;
    index.seed_ = seed_;
    size_t distinct = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
        distinct += i == 0 || entries[i].hash() != entries[i - 1].hash();
    }
    index.size_ = distinct;
    if (distinct == 0) return index;

    index.buckets_ = buckets_for(distinct);
    // The first pass finds how far the last run spills past the home range; +1 leaves an empty
    // slot at the end, so every probe stops inside the table without a bounds check.
    uint64_t next = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
        pace.pace();
        if (i > 0 && entries[i].hash() == entries[i - 1].hash()) continue;
        next = std::max(index.home_of(entries[i].hash()), next) + 1;
    }
    index.slot_count_ = std::max(next, index.buckets_) + 1;
    index.slots_ = allocate_slots(index.slot_count_);

    // Most names are in one set and store its id inline; the rest share posting lists, one per
    // distinct combination of sets (a name in lists "ads" and "adult" points at the same list as
    // every other name in both).
    std::map<std::vector<uint32_t>, uint32_t> posting_of;
    std::vector<uint32_t> ids;
    next = 0;
    for (size_t i = 0; i < entries.size();) {
        pace.pace();
        const uint64_t hash = entries[i].hash();
        ids.clear();
        for (; i < entries.size() && entries[i].hash() == hash; ++i)
            ids.push_back(entries[i].set_id);
        uint32_t value = ids[0];
        if (ids.size() > 1) {
            auto [it, inserted] =
                posting_of.try_emplace(ids, static_cast<uint32_t>(index.postings_.size()));
            if (inserted) {
                index.postings_.push_back(static_cast<uint32_t>(ids.size()));
                index.postings_.insert(index.postings_.end(), ids.begin(), ids.end());
                assert(index.postings_.size() < kPostingBit);
            }
            value = kPostingBit | it->second;
        }
        const uint64_t pos = std::max(index.home_of(hash), next);
        index.slots_[pos] =
            Slot{static_cast<uint32_t>(hash), static_cast<uint32_t>(hash >> 32), value};
        next = pos + 1;
    }
    index.postings_.shrink_to_fit();
    return index;
}

uint32_t DomainIndex::probe(const Slot* slot, uint64_t hash) {
    for (;; ++slot) {
        const uint64_t stored = (static_cast<uint64_t>(slot->hash_hi) << 32) | slot->hash_lo;
        if (stored == hash) return slot->value;
        // Runs are sorted: a larger hash means ours would have been placed before it.
        if (stored == 0 || stored > hash) return kAbsent;
    }
}

uint32_t DomainIndex::find(std::string_view name) const {
    if (size_ == 0 || name.empty()) return kAbsent;
    const uint64_t hash = hash_name(name, seed_);
    return probe(slots_.get() + home_of(hash), hash);
}

void DomainIndex::start_suffix_lookup(std::string_view host, SuffixLookup& lookup) const {
    lookup.count = 0;
    if (size_ == 0 || host.empty()) return;
    for_each_label_hash(host, seed_, kMaxLabels, [&](size_t start, uint64_t chained) {
        const uint64_t hash = folded(chained);
        __builtin_prefetch(slots_.get() + home_of(hash));
        lookup.hashes[lookup.count] = hash;
        lookup.starts[lookup.count] = static_cast<uint32_t>(start);
        ++lookup.count;
    });
}

size_t DomainIndex::memory_bytes() const {
    return slot_count_ * sizeof(Slot) + postings_.capacity() * sizeof(uint32_t);
}

}  // namespace hallpass
