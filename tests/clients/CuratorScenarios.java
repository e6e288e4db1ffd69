// Apache Curator (Debian's 5.4 with the ZooKeeper 3.8 client) against a server:
// `java CuratorScenarios <connect string> <mutex|latch|cache|create>`. Each scenario
// prints what it observed, one fact per line; tests/tests/curator.rs checks the lines.
// Any failure throws, which exits non-zero with the stack trace on stderr.

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.curator.framework.api.transaction.CuratorTransactionResult;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.barriers.DistributedDoubleBarrier;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.TreeCache;
import org.apache.curator.framework.recipes.cache.TreeCacheEvent;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.utils.Compatibility;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.admin.ZooKeeperAdmin;
import org.apache.zookeeper.data.Stat;

public class CuratorScenarios {
    static final long WAIT_S = 30;
    static String connect;

    public static void main(String[] args) throws Exception {
        connect = args[0];
        switch (args[1]) {
            case "mutex": mutex(); break;
            case "latch": latch(); break;
            case "cache": cache(); break;
            case "create": create(); break;
            case "pipeline": pipeline(); break;
            case "recipes": recipes(); break;
            case "restart": restart(); break;
            default: throw new IllegalArgumentException("unknown scenario " + args[1]);
        }
        System.out.flush();
        // Curator leaves non-daemon threads behind.
        System.exit(0);
    }

    static CuratorFramework client() throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.builder()
            .connectString(connect)
            .sessionTimeoutMs(30000)
            .connectionTimeoutMs(30000)
            .retryPolicy(new RetryNTimes(20, 500))
            .build();
        c.start();
        check(c.blockUntilConnected((int) WAIT_S, TimeUnit.SECONDS), "connected");
        return c;
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError("failed: " + what);
    }

    static byte[] b(String s) { return s.getBytes(StandardCharsets.UTF_8); }
    static String s(byte[] b) { return b == null ? "null" : new String(b, StandardCharsets.UTF_8); }

    // Two clients, one thread each, take the same lock 15 times: never two holders.
    static void mutex() throws Exception {
        CuratorFramework c1 = client(), c2 = client();
        AtomicInteger holders = new AtomicInteger();
        AtomicInteger maxHolders = new AtomicInteger();
        AtomicInteger acquisitions = new AtomicInteger();
        AtomicInteger lockNodesWhileHeld = new AtomicInteger(-1);
        List<Throwable> errors = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        for (CuratorFramework c : Arrays.asList(c1, c2)) {
            Thread t = new Thread(() -> {
                try {
                    InterProcessMutex m = new InterProcessMutex(c, "/locks/m");
                    for (int i = 0; i < 15; i++) {
                        check(m.acquire(WAIT_S, TimeUnit.SECONDS), "acquire");
                        try {
                            int now = holders.incrementAndGet();
                            maxHolders.accumulateAndGet(now, Math::max);
                            acquisitions.incrementAndGet();
                            List<String> kids = c.getChildren().forPath("/locks/m");
                            // Our own lock node is there while we hold it.
                            boolean mine = false;
                            for (String k : kids) mine |= k.contains("lock-");
                            check(mine, "lock node present while held");
                            Thread.sleep(3);
                            holders.decrementAndGet();
                        } finally {
                            m.release();
                        }
                    }
                } catch (Throwable e) {
                    synchronized (errors) { errors.add(e); }
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) t.join();
        if (!errors.isEmpty()) throw new RuntimeException(errors.get(0));
        System.out.println("mutex acquisitions=" + acquisitions.get());
        System.out.println("mutex max holders=" + maxHolders.get());
        // The lock's parent is a container: the server may already have reaped it.
        int left;
        try {
            left = c1.getChildren().forPath("/locks/m").size();
        } catch (KeeperException.NoNodeException gone) {
            left = 0;
        }
        System.out.println("mutex lock nodes left=" + left);
        c1.close();
        c2.close();
    }

    static LeaderLatch awaitLeader(LeaderLatch... latches) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        while (System.nanoTime() < deadline) {
            LeaderLatch leader = null;
            int n = 0;
            for (LeaderLatch l : latches) {
                if (l.hasLeadership()) { leader = l; n++; }
            }
            check(n <= 1, "at most one leader");
            if (n == 1) return leader;
            Thread.sleep(20);
        }
        throw new AssertionError("no leader within " + WAIT_S + " s");
    }

    // Two participants: exactly one leads, both agree who, and leadership moves on close.
    static void latch() throws Exception {
        CuratorFramework c1 = client(), c2 = client();
        LeaderLatch a = new LeaderLatch(c1, "/leader", "a");
        LeaderLatch b = new LeaderLatch(c2, "/leader", "b");
        a.start();
        b.start();
        LeaderLatch first = awaitLeader(a, b);
        LeaderLatch other = first == a ? b : a;
        System.out.println("latch leaders=1");
        // Let the follower's view settle, then compare: both name the same leader.
        Thread.sleep(200);
        check(!other.hasLeadership(), "follower does not lead");
        System.out.println("latch agreed=" + (a.getLeader().getId().equals(first.getId())
            && b.getLeader().getId().equals(first.getId())));
        Collection<Participant> ps = a.getParticipants();
        System.out.println("latch participants=" + ps.size());
        System.out.println("latch latch nodes=" + c1.getChildren().forPath("/leader").size());
        first.close();
        check(other.await(WAIT_S, TimeUnit.SECONDS), "leadership moves");
        System.out.println("latch moved=" + other.hasLeadership());
        System.out.println("latch leader after close is the other=" + other.getLeader().getId().equals(other.getId()));
        System.out.println("latch latch nodes after close=" + c1.getChildren().forPath("/leader").size());
        other.close();
        c1.close();
        c2.close();
    }

    // A CuratorCache on /cache sees another client's creates, changes and deletes.
    static void cache() throws Exception {
        System.out.println("cache persistent watchers in client library=" + Compatibility.hasPersistentWatchers());
        CuratorFramework watcher = client(), writer = client();
        writer.create().forPath("/cache", b("root"));
        writer.create().forPath("/cache/pre", b("p"));
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        CountDownLatch initialized = new CountDownLatch(1);
        CuratorCache cache = CuratorCache.build(watcher, "/cache");
        cache.listenable().addListener(CuratorCacheListener.builder()
            .forCreates(n -> events.add("create " + n.getPath() + " " + s(n.getData())))
            .forChanges((o, n) -> events.add("change " + n.getPath() + " " + s(o.getData()) + " -> " + s(n.getData())
                + " version " + n.getStat().getVersion()))
            .forDeletes(n -> events.add("delete " + n.getPath()))
            .forInitialized(initialized::countDown)
            .build());
        cache.start();
        check(initialized.await(WAIT_S, TimeUnit.SECONDS), "cache initialized");
        // The initial load: both existing nodes, in either order.
        List<String> initial = new ArrayList<>();
        initial.add(take(events));
        initial.add(take(events));
        initial.sort(null);
        for (String e : initial) System.out.println("cache initial " + e);
        // One change at a time, each awaited, so the order is the server's.
        writer.create().forPath("/cache/a", b("1"));
        System.out.println("cache " + take(events));
        writer.create().forPath("/cache/a/b", b("2"));
        System.out.println("cache " + take(events));
        writer.setData().forPath("/cache/a", b("3"));
        System.out.println("cache " + take(events));
        writer.setData().forPath("/cache", b("root2"));
        System.out.println("cache " + take(events));
        writer.delete().forPath("/cache/a/b");
        System.out.println("cache " + take(events));
        writer.delete().forPath("/cache/a");
        System.out.println("cache " + take(events));
        writer.create().withMode(CreateMode.EPHEMERAL).forPath("/cache/pre/e", b("eph"));
        System.out.println("cache " + take(events));
        writer.close(); // the ephemeral goes with the writer's session
        System.out.println("cache " + take(events));
        System.out.println("cache size=" + cache.size());
        String extra = events.poll(300, TimeUnit.MILLISECONDS);
        System.out.println("cache extra event=" + extra);
        cache.close();
        watcher.close();
    }

    static String take(BlockingQueue<String> q) throws InterruptedException {
        String e = q.poll(WAIT_S, TimeUnit.SECONDS);
        if (e == null) throw new AssertionError("no cache event within " + WAIT_S + " s");
        return e;
    }

    // Curator's create(): create2 (op 15) with a Stat, createContainer (19) for parents,
    // TTL, ephemeral owner, version checks and transactions (multi).
    static void create() throws Exception {
        CuratorFramework c = client();
        long session = c.getZookeeperClient().getZooKeeper().getSessionId();

        Stat st = new Stat();
        String p = c.create().storingStatIn(st).withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath("/seq-", b("hello"));
        System.out.println("create2 path=" + p);
        System.out.println("create2 stat version=" + st.getVersion() + " cversion=" + st.getCversion()
            + " aversion=" + st.getAversion() + " dataLength=" + st.getDataLength()
            + " numChildren=" + st.getNumChildren() + " ephemeralOwner=" + st.getEphemeralOwner());
        System.out.println("create2 czxid==mzxid==pzxid=" + (st.getCzxid() == st.getMzxid() && st.getMzxid() == st.getPzxid() && st.getCzxid() > 0));
        Stat again = c.checkExists().forPath(p);
        System.out.println("create2 stat equals exists=" + st.equals(again));

        Stat e = new Stat();
        c.create().storingStatIn(e).withMode(CreateMode.EPHEMERAL).forPath("/eph", b("x"));
        System.out.println("ephemeral owner is session=" + (e.getEphemeralOwner() == session && session != 0));

        // Parents as containers: once the leaf goes, the server reaps them bottom-up.
        c.create().creatingParentContainersIfNeeded().forPath("/ct/a/b/leaf", b("leaf"));
        System.out.println("containers parent data=" + s(c.getData().forPath("/ct/a/b")));
        System.out.println("containers parent ephemeralOwner=" + c.checkExists().forPath("/ct/a").getEphemeralOwner());
        c.create().creatingParentsIfNeeded().forPath("/plain/a/leaf");
        c.delete().forPath("/ct/a/b/leaf");
        c.delete().forPath("/plain/a/leaf");
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        while (c.checkExists().forPath("/ct") != null) {
            check(System.nanoTime() < deadline, "containers reaped");
            Thread.sleep(50);
        }
        System.out.println("containers reaped=true");
        System.out.println("plain parents kept=" + (c.checkExists().forPath("/plain/a") != null));

        Stat t = new Stat();
        c.create().withTtl(600000).storingStatIn(t).withMode(CreateMode.PERSISTENT_WITH_TTL).forPath("/ttl", b("t"));
        System.out.println("ttl node ephemeralOwner=" + t.getEphemeralOwner());

        // create().orSetData() and version checks.
        c.create().orSetData().forPath("/v", b("1"));
        c.create().orSetData().forPath("/v", b("2"));
        Stat v = c.checkExists().forPath("/v");
        System.out.println("orSetData data=" + s(c.getData().forPath("/v")) + " version=" + v.getVersion());
        try {
            c.setData().withVersion(7).forPath("/v", b("3"));
            System.out.println("bad version accepted");
        } catch (KeeperException.BadVersionException ex) {
            System.out.println("bad version=" + ex.code());
        }
        try {
            c.create().forPath("/v");
            System.out.println("duplicate accepted");
        } catch (KeeperException.NodeExistsException ex) {
            System.out.println("duplicate=" + ex.code());
        }

        // Transactions (multi): all or nothing.
        CuratorOp op1 = c.transactionOp().create().forPath("/tx", b("a"));
        CuratorOp op2 = c.transactionOp().setData().forPath("/v", b("tx"));
        CuratorOp op3 = c.transactionOp().check().withVersion(0).forPath("/tx");
        CuratorOp op4 = c.transactionOp().delete().forPath("/eph");
        for (CuratorTransactionResult r : c.transaction().forOperations(op1, op2, op3, op4)) {
            System.out.println("tx " + r.getType() + " " + r.getForPath() + " " + r.getResultPath()
                + " err=" + r.getError() + (r.getResultStat() != null ? " version=" + r.getResultStat().getVersion() : ""));
        }
        CuratorOp bad1 = c.transactionOp().create().forPath("/tx2", b("a"));
        CuratorOp bad2 = c.transactionOp().delete().withVersion(5).forPath("/tx");
        try {
            c.transaction().forOperations(bad1, bad2);
            System.out.println("failed tx accepted");
        } catch (KeeperException ex) {
            System.out.println("failed tx=" + ex.code() + " tx2 exists=" + (c.checkExists().forPath("/tx2") != null));
        }
        System.out.println("config length=" + c.getConfig().forEnsemble().length);
        c.close();
    }

    // The plain Java client (no Curator): a reconfig the server rejects, pipelined behind
    // 100 async creates on the same session, must be answered after them. The client
    // checks reply xids against its queue and drops the connection on a mismatch.
    static void pipeline() throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeperAdmin zk = new ZooKeeperAdmin(connect, 30000, e -> {
            if (e.getState() == org.apache.zookeeper.Watcher.Event.KeeperState.SyncConnected) connected.countDown();
        });
        check(connected.await(WAIT_S, TimeUnit.SECONDS), "connected");
        zk.create("/pipe", new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        // Big creates keep the server's commit busy while the reconfig arrives.
        int n = 100;
        byte[] big = new byte[200 * 1024];
        List<String> order = java.util.Collections.synchronizedList(new ArrayList<>());
        CountDownLatch done = new CountDownLatch(n + 2);
        for (int i = 0; i < n; i++) {
            zk.create("/pipe/n-", big, ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT_SEQUENTIAL,
                (rc, path, ctx, name) -> { order.add("create " + KeeperException.Code.get(rc)); done.countDown(); }, null);
        }
        zk.reconfigure("server.5=127.0.0.1:2888:3888;2181", null, null, -1,
            (rc, path, ctx, data, stat) -> { order.add("reconfig " + KeeperException.Code.get(rc)); done.countDown(); }, null);
        zk.create("/pipe/after", b("x"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT,
            (rc, path, ctx, name) -> { order.add("after " + KeeperException.Code.get(rc)); done.countDown(); }, null);
        check(done.await(WAIT_S, TimeUnit.SECONDS), "all replies");
        int ok = 0;
        for (int i = 0; i < n; i++) if (order.get(i).equals("create OK")) ok++;
        System.out.println("pipeline creates ok=" + ok);
        System.out.println("pipeline " + order.get(n));
        System.out.println("pipeline " + order.get(n + 1));
        System.out.println("pipeline children=" + zk.getChildren("/pipe", false).size());
        zk.close();
    }

    // More recipes: versioned counters, a semaphore, a double barrier, the older
    // TreeCache (one-shot watches) and a namespaced client.
    static void recipes() throws Exception {
        CuratorFramework c1 = client(), c2 = client(), c3 = client();

        // SharedCount: trySetCount with a stale version fails (setData with a version).
        SharedCount a = new SharedCount(c1, "/count", 0), b = new SharedCount(c2, "/count", 0);
        a.start();
        b.start();
        org.apache.curator.framework.recipes.shared.VersionedValue<Integer> stale = b.getVersionedValue();
        check(a.trySetCount(a.getVersionedValue(), 5), "first trySetCount");
        boolean staleWon = b.trySetCount(stale, 6);
        System.out.println("sharedcount stale set won=" + staleWon);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        while (b.getCount() != 5) {
            check(System.nanoTime() < deadline, "b sees 5");
            Thread.sleep(20);
        }
        System.out.println("sharedcount other client sees=" + b.getCount());
        a.close();
        b.close();

        // DistributedAtomicLong: 3 clients x 20 increments, optimistic (versioned set).
        List<Thread> ts = new ArrayList<>();
        List<Throwable> errors = java.util.Collections.synchronizedList(new ArrayList<>());
        for (CuratorFramework c : Arrays.asList(c1, c2, c3)) {
            Thread t = new Thread(() -> {
                try {
                    DistributedAtomicLong n = new DistributedAtomicLong(c, "/atomic", new RetryNTimes(1000, 1));
                    for (int i = 0; i < 20; i++) {
                        AtomicValue<Long> r = n.increment();
                        check(r.succeeded(), "increment succeeded");
                    }
                } catch (Throwable e) { errors.add(e); }
            });
            ts.add(t);
            t.start();
        }
        for (Thread t : ts) t.join();
        if (!errors.isEmpty()) throw new RuntimeException(errors.get(0));
        System.out.println("atomic long=" + new DistributedAtomicLong(c1, "/atomic", new RetryNTimes(3, 10)).get().postValue());

        // InterProcessSemaphoreV2 with 2 leases: a third acquire times out until one returns.
        InterProcessSemaphoreV2 s1 = new InterProcessSemaphoreV2(c1, "/sem", 2);
        InterProcessSemaphoreV2 s2 = new InterProcessSemaphoreV2(c2, "/sem", 2);
        InterProcessSemaphoreV2 s3 = new InterProcessSemaphoreV2(c3, "/sem", 2);
        Lease l1 = s1.acquire(WAIT_S, TimeUnit.SECONDS);
        Lease l2 = s2.acquire(WAIT_S, TimeUnit.SECONDS);
        check(l1 != null && l2 != null, "two leases");
        Lease l3 = s3.acquire(300, TimeUnit.MILLISECONDS);
        System.out.println("semaphore third lease while full=" + (l3 != null));
        s1.returnLease(l1);
        l3 = s3.acquire(WAIT_S, TimeUnit.SECONDS);
        System.out.println("semaphore third lease after return=" + (l3 != null));
        s2.returnLease(l2);
        s3.returnLease(l3);

        // DistributedDoubleBarrier for 3: all enter together, all leave together.
        List<String> order = java.util.Collections.synchronizedList(new ArrayList<>());
        ts.clear();
        for (CuratorFramework c : Arrays.asList(c1, c2, c3)) {
            Thread t = new Thread(() -> {
                try {
                    DistributedDoubleBarrier bar = new DistributedDoubleBarrier(c, "/barrier", 3);
                    check(bar.enter(WAIT_S, TimeUnit.SECONDS), "enter");
                    order.add("entered");
                    check(bar.leave(WAIT_S, TimeUnit.SECONDS), "leave");
                    order.add("left");
                } catch (Throwable e) { errors.add(e); }
            });
            ts.add(t);
            t.start();
        }
        for (Thread t : ts) t.join();
        if (!errors.isEmpty()) throw new RuntimeException(errors.get(0));
        System.out.println("barrier " + order);

        // TreeCache: one-shot data and child watches re-set on every event.
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        c1.create().forPath("/tree", b("t"));
        TreeCache tc = TreeCache.newBuilder(c1, "/tree").build();
        tc.getListenable().addListener((cl, ev) -> {
            if (ev.getType() == TreeCacheEvent.Type.CONNECTION_SUSPENDED
                || ev.getType() == TreeCacheEvent.Type.CONNECTION_RECONNECTED
                || ev.getType() == TreeCacheEvent.Type.CONNECTION_LOST) return;
            events.add(ev.getType() + (ev.getData() != null ? " " + ev.getData().getPath() + " " + s(ev.getData().getData()) : ""));
        });
        tc.start();
        System.out.println("treecache " + take(events));
        System.out.println("treecache " + take(events));
        c2.create().forPath("/tree/a", b("1"));
        System.out.println("treecache " + take(events));
        c2.create().forPath("/tree/a/b", b("2"));
        System.out.println("treecache " + take(events));
        c2.setData().forPath("/tree/a/b", b("3"));
        System.out.println("treecache " + take(events));
        c2.delete().deletingChildrenIfNeeded().forPath("/tree/a");
        List<String> removed = new ArrayList<>();
        removed.add(take(events));
        removed.add(take(events));
        removed.sort(null);
        System.out.println("treecache " + removed);
        tc.close();

        // A namespace is a client-side chroot: paths the server sees are prefixed.
        CuratorFramework ns = c3.usingNamespace("app");
        ns.create().creatingParentsIfNeeded().forPath("/x/y", b("v"));
        System.out.println("namespace raw path data=" + s(c1.getData().forPath("/app/x/y")));
        System.out.println("namespace children=" + ns.getChildren().forPath("/x"));

        c1.close();
        c2.close();
        c3.close();
    }

    // The plain Java client across a server restart (kill -9, same port and data): it
    // reconnects within the session timeout to the same session, its ephemeral is
    // still there, and the watch it set before is re-registered (setWatches) and fires.
    // The test restarts the server between "ready" and the line it writes to stdin.
    static void restart() throws Exception {
        BlockingQueue<String> states = new LinkedBlockingQueue<>();
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        org.apache.zookeeper.ZooKeeper zk = new org.apache.zookeeper.ZooKeeper(connect, 30000, e -> {
            if (e.getType() == org.apache.zookeeper.Watcher.Event.EventType.None) states.add(e.getState().toString());
            else events.add(e.getType() + " " + e.getPath());
        });
        check("SyncConnected".equals(states.poll(WAIT_S, TimeUnit.SECONDS)), "connected");
        long session = zk.getSessionId();
        zk.create("/p", b("v0"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        zk.create("/eph", b("e"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        zk.getData("/p", true, null);
        zk.exists("/later", true);
        System.out.println("ready");
        System.out.flush();
        new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).readLine();
        String st;
        while (!"SyncConnected".equals(st = states.poll(WAIT_S, TimeUnit.SECONDS))) {
            check(st != null, "reconnected");
            check(!"Expired".equals(st), "session not expired");
        }
        System.out.println("restart same session=" + (zk.getSessionId() == session));
        Stat e = zk.exists("/eph", false);
        System.out.println("restart ephemeral kept=" + (e != null && e.getEphemeralOwner() == session));
        System.out.println("restart data=" + s(zk.getData("/p", false, null)));
        CountDownLatch c2 = new CountDownLatch(1);
        org.apache.zookeeper.ZooKeeper other = new org.apache.zookeeper.ZooKeeper(connect, 30000, ev -> {
            if (ev.getState() == org.apache.zookeeper.Watcher.Event.KeeperState.SyncConnected) c2.countDown();
        });
        check(c2.await(WAIT_S, TimeUnit.SECONDS), "other connected");
        other.setData("/p", b("v1"), -1);
        other.create("/later", b("l"), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        List<String> got = new ArrayList<>();
        got.add(take(events));
        got.add(take(events));
        System.out.println("restart watches fired=" + got);
        other.close();
        zk.close();
    }
}
