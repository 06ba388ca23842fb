//! The soak's request mix: what each worker asks for next, drawn from a small deterministic
//! PRNG (seeded per worker, so runs are reproducible in shape).
//!
//! REST workers: [`LIST_PERCENT`]% list pages (page size one of [`PAGE_SIZES`], page from 1
//! to one past the last), [`DETAIL_PERCENT`]% details of demo articles (`1..=articles`, never
//! written to), [`MISSING_PERCENT`]% details of ids from [`MISSING_BASE`] up (never created, so
//! 404 is expected) and the rest writes. A write creates an article when the worker owns none,
//! deletes one when it owns [`MAX_OWNED`], else creates, patches or deletes one of its own
//! (40/40/20). Workers only ever update or delete articles they created themselves, so no
//! write races another worker's, and the database grows by at most `MAX_OWNED` per worker.
//!
//! gRPC workers: 60% `ArticleList`, 30% `ArticleDetail` of demo articles, 10% of unknown ids.

use serde::Serialize;

/// Share of list pages among REST requests, in percent.
pub(crate) const LIST_PERCENT: u64 = 55;
/// Share of details of existing articles among REST requests, in percent.
pub(crate) const DETAIL_PERCENT: u64 = 30;
/// Share of details of unknown ids among REST requests, in percent.
pub(crate) const MISSING_PERCENT: u64 = 8;
/// The page sizes lists use.
pub(crate) const PAGE_SIZES: [u32; 6] = [1, 5, 10, 20, 50, 100];
/// The first id asked for as "unknown": far above anything the soak creates.
pub(crate) const MISSING_BASE: i32 = 1_000_000_000;
/// The most articles one worker owns at a time.
pub(crate) const MAX_OWNED: usize = 8;

/// The kinds of request, each counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// `GET /articles?page=&page_size=`.
    List,
    /// `GET /articles/{pk}` of an existing article.
    Detail,
    /// `GET /articles/{pk}` of an unknown id (404 expected).
    DetailMissing,
    /// `POST /articles`.
    Create,
    /// `PATCH /articles/{pk}`.
    Update,
    /// `DELETE /articles/{pk}`.
    Delete,
    /// gRPC `ArticleList`.
    GrpcList,
    /// gRPC `ArticleDetail` of an existing article.
    GrpcDetail,
    /// gRPC `ArticleDetail` of an unknown id (NOT_FOUND expected).
    GrpcDetailMissing,
}

impl Kind {
    /// Every kind, in report order.
    pub(crate) const ALL: [Self; 9] = [
        Self::List,
        Self::Detail,
        Self::DetailMissing,
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::GrpcList,
        Self::GrpcDetail,
        Self::GrpcDetailMissing,
    ];

    /// Its position in [`Kind::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// A label for tables and error messages.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::List => "GET /articles?page=&page_size=",
            Self::Detail => "GET /articles/{pk}",
            Self::DetailMissing => "GET /articles/{unknown} (404 expected)",
            Self::Create => "POST /articles",
            Self::Update => "PATCH /articles/{own pk}",
            Self::Delete => "DELETE /articles/{own pk}",
            Self::GrpcList => "gRPC ArticleList",
            Self::GrpcDetail => "gRPC ArticleDetail",
            Self::GrpcDetailMissing => "gRPC ArticleDetail unknown (NOT_FOUND expected)",
        }
    }
}

/// One request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Planned {
    /// A list page.
    List {
        /// 1-based page.
        page: u32,
        /// Articles per page.
        page_size: u32,
    },
    /// A detail of an existing article.
    Detail { pk: i32 },
    /// A detail of an unknown id.
    DetailMissing { pk: i32 },
    /// Create an article.
    Create { title: String },
    /// Patch one of our articles.
    Update { pk: i32, title: String },
    /// Delete one of our articles.
    Delete { pk: i32 },
}

impl Planned {
    /// The kind it is counted as (REST kinds; gRPC workers map list/detail themselves).
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Self::List { .. } => Kind::List,
            Self::Detail { .. } => Kind::Detail,
            Self::DetailMissing { .. } => Kind::DetailMissing,
            Self::Create { .. } => Kind::Create,
            Self::Update { .. } => Kind::Update,
            Self::Delete { .. } => Kind::Delete,
        }
    }
}

/// SplitMix64: tiny, fast, good enough to vary a load mix.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for worker `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED_50AC)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the modulo bias is irrelevant here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One REST worker's mix and the articles it owns.
#[derive(Debug, Clone)]
pub(crate) struct Mix {
    worker: usize,
    articles: u32,
    rng: Rng,
    owned: Vec<i32>,
    writes: u64,
}

impl Mix {
    /// The mix of REST worker `worker` over `articles` demo articles.
    pub(crate) fn new(worker: usize, articles: u32) -> Self {
        Self {
            worker,
            articles: articles.max(1),
            rng: Rng::new(worker as u64),
            owned: Vec::new(),
            writes: 0,
        }
    }

    /// The next request. A planned delete already forgets the article.
    pub(crate) fn plan(&mut self) -> Planned {
        let roll = self.rng.below(100);
        if roll < LIST_PERCENT {
            let page_size = PAGE_SIZES[self.rng.below(PAGE_SIZES.len() as u64) as usize];
            let pages = self.articles.div_ceil(page_size);
            let page = 1 + self.rng.below(u64::from(pages) + 1) as u32;
            Planned::List { page, page_size }
        } else if roll < LIST_PERCENT + DETAIL_PERCENT {
            Planned::Detail {
                pk: existing_pk(&mut self.rng, self.articles),
            }
        } else if roll < LIST_PERCENT + DETAIL_PERCENT + MISSING_PERCENT {
            Planned::DetailMissing {
                pk: missing_pk(&mut self.rng),
            }
        } else {
            self.write()
        }
    }

    fn write(&mut self) -> Planned {
        self.writes += 1;
        let title = format!("soak w{} #{}", self.worker, self.writes);
        if self.owned.is_empty() {
            return Planned::Create { title };
        }
        let pick = self.rng.below(self.owned.len() as u64) as usize;
        let roll = self.rng.below(100);
        if self.owned.len() >= MAX_OWNED || roll >= 80 {
            Planned::Delete {
                pk: self.owned.swap_remove(pick),
            }
        } else if roll < 40 {
            Planned::Create { title }
        } else {
            Planned::Update {
                pk: self.owned[pick],
                title,
            }
        }
    }

    /// Records that a create succeeded with id `pk`.
    pub(crate) fn created(&mut self, pk: i32) {
        self.owned.push(pk);
    }
}

/// An id in `1..=articles`.
pub(crate) fn existing_pk(rng: &mut Rng, articles: u32) -> i32 {
    let pk = 1 + rng.below(u64::from(articles.max(1)));
    i32::try_from(pk).unwrap_or(1)
}

/// An id that never exists: [`MISSING_BASE`] plus up to a million.
pub(crate) fn missing_pk(rng: &mut Rng) -> i32 {
    // Below a million, so the sum stays far inside i32.
    MISSING_BASE + rng.below(1_000_000) as i32
}

/// A gRPC worker's next call: `(page, page_size)` for a list, or an id and whether it is an
/// unknown one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrpcPlanned {
    /// `ArticleList`.
    List {
        /// 1-based page.
        page: i32,
        /// Articles per page.
        page_size: i32,
    },
    /// `ArticleDetail`.
    Detail {
        pk: i32,
        /// Whether NOT_FOUND is expected.
        missing: bool,
    },
}

/// The next call of a gRPC worker.
pub(crate) fn next_grpc(rng: &mut Rng, articles: u32) -> GrpcPlanned {
    let roll = rng.below(100);
    if roll < 60 {
        let page_size = PAGE_SIZES[rng.below(PAGE_SIZES.len() as u64) as usize];
        let pages = articles.max(1).div_ceil(page_size);
        let page = 1 + rng.below(u64::from(pages) + 1);
        GrpcPlanned::List {
            page: i32::try_from(page).unwrap_or(1),
            page_size: i32::try_from(page_size).unwrap_or(10),
        }
    } else if roll < 90 {
        GrpcPlanned::Detail {
            pk: existing_pk(rng, articles),
            missing: false,
        }
    } else {
        GrpcPlanned::Detail {
            pk: missing_pk(rng),
            missing: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_has_roughly_the_documented_shares_and_stays_in_range() {
        let mut mix = Mix::new(3, 1000);
        let mut counts = [0u64; Kind::ALL.len()];
        let mut next_id = 2000;
        for _ in 0..100_000 {
            let planned = mix.plan();
            counts[planned.kind().index()] += 1;
            match planned {
                Planned::List { page, page_size } => {
                    assert!(PAGE_SIZES.contains(&page_size));
                    assert!(page >= 1 && page <= 1000u32.div_ceil(page_size) + 1);
                }
                Planned::Detail { pk } => assert!((1..=1000).contains(&pk)),
                Planned::DetailMissing { pk } => assert!(pk >= MISSING_BASE),
                Planned::Create { .. } => {
                    mix.created(next_id);
                    next_id += 1;
                }
                Planned::Update { pk, .. } => assert!(mix.owned.contains(&pk)),
                Planned::Delete { pk } => assert!(!mix.owned.contains(&pk)),
            }
            assert!(mix.owned.len() <= MAX_OWNED);
        }
        let share = |k: Kind| counts[k.index()] as f64 / 1000.0;
        assert!((share(Kind::List) - 55.0).abs() < 2.0, "{counts:?}");
        assert!((share(Kind::Detail) - 30.0).abs() < 2.0, "{counts:?}");
        assert!((share(Kind::DetailMissing) - 8.0).abs() < 1.0, "{counts:?}");
        let writes = share(Kind::Create) + share(Kind::Update) + share(Kind::Delete);
        assert!((writes - 7.0).abs() < 1.0, "{counts:?}");
        assert!(counts[Kind::Update.index()] > 0 && counts[Kind::Delete.index()] > 0);
    }

    #[test]
    fn workers_differ_but_are_reproducible() {
        let mut m1 = Mix::new(1, 50);
        let mut m1b = Mix::new(1, 50);
        let mut m2 = Mix::new(2, 50);
        let s1: Vec<Planned> = (0..20).map(|_| m1.plan()).collect();
        let s1b: Vec<Planned> = (0..20).map(|_| m1b.plan()).collect();
        let s2: Vec<Planned> = (0..20).map(|_| m2.plan()).collect();
        assert_eq!(s1, s1b);
        assert_ne!(s1, s2);
    }

    #[test]
    fn grpc_calls_stay_in_range() {
        let mut rng = Rng::new(9);
        for _ in 0..10_000 {
            match next_grpc(&mut rng, 7) {
                GrpcPlanned::List { page, page_size } => {
                    assert!(page >= 1 && page_size >= 1);
                }
                GrpcPlanned::Detail { pk, missing } => {
                    assert_eq!(missing, pk >= MISSING_BASE);
                    assert!(missing || (1..=7).contains(&pk));
                }
            }
        }
    }
}
