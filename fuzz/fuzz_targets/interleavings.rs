//! Interleavings: the fuzz input is the schedule.
//!
//! The input drives `Strategy::Bytes`: every round with a choice runs the one
//! task the next byte names, and every random number the program draws
//! (how many tellers, which transfers) takes eight bytes. The program is a
//! small bank: tellers move money between accounts under an async lock that
//! they hold across a yield, a sleeper may be aborted mid-sleep, a timer
//! races a channel, and the root checks that no money was created or
//! destroyed. Built with ASan (cargo fuzz's default), every run also
//! exercises the executor's waker and arena code under the sanitizer.
//!
//! With `--features planted-bug` a transfer reads the balances, yields, and
//! writes them back without holding the lock: a lost update that only a
//! schedule holding one teller back while a later one starts can reveal
//! (tellers start three rounds apart, so running every task every round
//! never overlaps them). `fuzz/run.sh` checks that the fuzzer finds it.

#![no_main]

use commonware_runtime::{
    deterministic::{Config, Context, Executor, Strategy},
    reschedule, Clock, Runner, Spawner,
};
use futures::{channel::mpsc, lock::Mutex, FutureExt, StreamExt};
use libfuzzer_sys::fuzz_target;
use rand_core::RngCore;
use std::{sync::Arc, time::Duration};

const ACCOUNTS: usize = 3;
const BALANCE: u64 = 100;

type Bank = Mutex<[u64; ACCOUNTS]>;

async fn transfer(bank: &Bank, from: usize, to: usize, amount: u64) {
    if cfg!(feature = "planted-bug") {
        let snapshot = *bank.lock().await;
        reschedule().await;
        if snapshot[from] >= amount {
            let mut accounts = bank.lock().await;
            accounts[from] = snapshot[from] - amount;
            accounts[to] = snapshot[to] + amount;
        }
    } else {
        let mut accounts = bank.lock().await;
        if accounts[from] >= amount {
            accounts[from] -= amount;
            reschedule().await;
            accounts[to] += amount;
        }
    }
}

async fn bank(mut context: Context) {
    let bank = Arc::new(Bank::new([BALANCE; ACCOUNTS]));
    let (done, mut finished) = mpsc::unbounded();
    let tellers = 2 + context.next_u64() % 2;
    for teller in 0..tellers {
        let (bank, done, mut context) = (bank.clone(), done.clone(), context.clone());
        context
            .clone()
            .spawn(&format!("teller{teller}"), async move {
                for _ in 0..3 * teller {
                    reschedule().await;
                }
                for _ in 0..2 {
                    let r = context.next_u64();
                    let from = (r % ACCOUNTS as u64) as usize;
                    let to = (from + 1 + ((r >> 8) % (ACCOUNTS as u64 - 1)) as usize) % ACCOUNTS;
                    let amount = (r >> 16) % 50 + 1;
                    transfer(&bank, from, to, amount).await;
                }
                let _ = done.unbounded_send(teller);
            });
    }

    // A sleeper that may be aborted before its timer fires.
    let nap = Duration::from_millis(context.next_u64() % 4);
    let sleeper = context.clone();
    let sleeper = context.spawn("sleeper", async move { sleeper.sleep(nap).await });
    if context.next_u64() % 2 == 0 {
        sleeper.abort();
    }

    // A timer racing the tellers: whichever wins, the other is dropped
    // (a dropped `next()` loses no message).
    let mut reported = 0;
    {
        let mut timer = context.sleep(Duration::from_millis(1)).fuse();
        let mut first = finished.next().fuse();
        futures::select! {
            _ = timer => {}
            teller = first => {
                assert!(teller.is_some_and(|t| t < tellers));
                reported += 1;
            }
        }
    }
    while reported < tellers {
        let teller = finished.next().await;
        assert!(teller.is_some_and(|t| t < tellers), "a teller vanished");
        reported += 1;
    }
    let total: u64 = bank.lock().await.iter().sum();
    assert_eq!(
        total,
        BALANCE * ACCOUNTS as u64,
        "money was created or destroyed"
    );
}

fuzz_target!(|input: &[u8]| {
    let config = Config {
        strategy: Strategy::Bytes(input.into()),
        ..Config::default()
    };
    let (runner, context, _) = Executor::init(config);
    runner.start(bank(context));
});
