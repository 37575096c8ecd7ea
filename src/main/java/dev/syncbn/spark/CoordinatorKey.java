package dev.syncbn.spark;

import dev.syncbn.coord.Coordinator;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.apache.spark.SecurityManager;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkEnv;

/**
 * How a replica comes by the run's key, which it proves to the coordination service (and which never
 * crosses the coordination channel itself).
 *
 * Without spark.authenticate the driver draws 32 random bytes and ships them in the task closure; Spark's
 * RPC carries the closure, in clear unless spark.network.crypto.enabled (which needs spark.authenticate).
 * With spark.authenticate on, the closure carries only a random salt, and the driver and every executor
 * derive the key as HMAC-SHA256(Spark's application secret, salt): the secret is Spark's own, delivered
 * to executors by Spark (spark.authenticate.secret on standalone, YARN's credentials on YARN), so a
 * reader of the closure learns nothing it can use.
 *
 * encrypt: frames are encrypted as well as sealed; set by spark.syncbn.coordinator.encrypt, by default
 * equal to spark.network.crypto.enabled (a cluster that encrypts Spark's RPC encrypts this channel too).
 */
public record CoordinatorKey(byte[] shipped, byte[] salt, boolean encrypt) implements Serializable {
    public static final String ENCRYPT_CONF = "spark.syncbn.coordinator.encrypt";

    public static CoordinatorKey forRun(SparkConf conf) {
        boolean encrypt = conf.getBoolean(ENCRYPT_CONF, conf.getBoolean("spark.network.crypto.enabled", false));
        if (conf.getBoolean("spark.authenticate", false)) return new CoordinatorKey(null, Coordinator.randomKey(), encrypt);
        return new CoordinatorKey(Coordinator.randomKey(), null, encrypt);
    }

    public boolean fromSparkSecret() {
        return shipped == null;
    }

    /** The key, on the driver or an executor (where SparkEnv holds Spark's secret). */
    public byte[] key() {
        if (!fromSparkSecret()) return shipped.clone();
        SecurityManager security = SparkEnv.get().securityManager();
        String secret = security.getSecretKey();
        if (secret == null || secret.isEmpty()) throw new IllegalStateException("spark.authenticate is on but this JVM has no Spark secret to derive the coordinator's key from");
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
            mac.update("syncbn coordinator key".getBytes(StandardCharsets.US_ASCII));
            return mac.doFinal(salt);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("this JVM has no HmacSHA256", e);
        }
    }
}
