"""The module explorer in headless Chromium, through Selenium.

Starts moda-server on an ephemeral loopback port with the bundled registry,
loads the page, checks its charts against /v1/models/{model}, composes
Sneaker and Ankle boot with the keyboard, tied and then per layer (another
id), classifies the bundled ankle boot (a PNG, with the per-layer composed
model) and examples/ankle-boot.jpg (chosen in the
file input, with the full model), reads the predicted class from the page,
replaces the model's Shirt class with its own module through the Replace
panel (a job, followed to the served patched model: the server serves a
copy of the registry), and finds no errors in the browser's console. Prints the page's size and
its first paint, and writes a screenshot to OUT_DIR/explorer.png.

    python ui_test.py MODA_SERVER REPO_ROOT OUT_DIR
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

MODEL = "fmnist-lenet5"
WAIT_S = 30
JOB_WAIT_S = 600  # a replacement job: seconds in a Release build, minutes under the sanitizers


def start_server(binary, registry, log_path):
    """moda-server on 127.0.0.1:0; returns the process and its base URL."""
    log = open(log_path, "w")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([binary, "--registry", registry, "--host", "127.0.0.1", "--port", "0",
                             "--threads", "2", "--workers", "2", "--drain-seconds", "10"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + WAIT_S
    while time.time() < deadline:
        with open(log_path) as f:
            m = re.search(r"listening on [^ ]*:(\d+)", f.read())
        if m:
            return proc, "http://127.0.0.1:%s" % m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("FAIL: moda-server did not start; see %s" % log_path)


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    # As root Chromium needs --no-sandbox; /dev/shm may be small in containers.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900",
                "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(executable_path="/usr/bin/chromedriver"))


def text_of(driver, element_id):
    found = driver.find_elements(By.ID, element_id)
    return found[0].text if found else ""


def wait_text(driver, element_id, what):
    """The element's text once it shows, or "" when the page reports an error first."""
    def shown(d):
        failed = "error" in d.find_element(By.ID, "status").get_attribute("class").split()
        return text_of(d, element_id) or failed
    WebDriverWait(driver, WAIT_S).until(shown, message="no %s on the page" % what)
    return text_of(driver, element_id)


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def run(driver, base, root, out_dir):
    with urllib.request.urlopen(base + "/v1/models/" + MODEL) as r:
        detail = json.load(r)
    # The first load in a new browser, then a reload (revalidated by ETag).
    for load in ("first load", "reload"):
        if load == "first load":
            driver.get(base + "/")
        else:
            driver.refresh()
        WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.ID, "compose").is_displayed(),
                                            message="the model never loaded: " + text_of(driver, "status"))
        paint = driver.execute_script(
            "return Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]))")
        check("first-contentful-paint" in paint, "no paint timing: %r" % paint)
        print("%s: first paint %.1f ms, first contentful paint %.1f ms after navigation start (loopback)"
              % (load, paint.get("first-paint", float("nan")), paint["first-contentful-paint"]))
        if load == "first load":  # a reload's revalidated files report no body
            sizes = driver.execute_script(
                "const n = performance.getEntriesByType('navigation')[0];"
                "return [n.decodedBodySize].concat(performance.getEntriesByType('resource')"
                ".filter(e => /\\/ui\\/explorer\\.(js|css)$/.test(e.name)).map(e => e.decodedBodySize))")
            check(len(sizes) == 3 and all(sizes), "page sizes %r" % sizes)
            print("page: %d bytes (HTML %d, script and style %s)" % (sum(sizes), sizes[0], sizes[1:]))

    # The charts show the route's data: a bar per class, a K x K heatmap,
    # a point per layer.
    k = detail["num_classes"]
    check(len(driver.find_elements(By.CSS_SELECTOR, "#sizes rect.bar")) == k, "module size bars")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#overlap rect")) >= k * k, "overlap heatmap cells")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#layers circle")) == len(detail["layers"]), "layer curve")
    row = driver.find_element(By.CSS_SELECTOR, "#models tbody tr")
    check("%.2f%%" % (100 * detail["test_accuracy"]) in row.text, "accuracy in the models table: " + row.text)

    # Compose Sneaker and Ankle boot, ticking them with the keyboard.
    for name in ("Sneaker", "Ankle boot"):
        box = driver.find_element(By.XPATH, "//label[normalize-space()='%s']/input" % name)
        box.send_keys(Keys.SPACE)
        check(box.is_selected(), "%s not ticked by the space bar" % name)
    driver.find_element(By.ID, "compose-button").click()
    composed = wait_text(driver, "composed-id", "composed id")
    check(composed == MODEL + "~7-9~0.9", "composed id %r; status %r" % (composed, text_of(driver, "status")))
    check(text_of(driver, "compose-cached").startswith("no"), "a first composition reported as cached")
    check(text_of(driver, "compose-mode") == "tied", "mode of a default composition")

    # The same classes per layer: another model, with its own id.
    Select(driver.find_element(By.ID, "mode")).select_by_value("per-layer")
    driver.find_element(By.ID, "compose-button").click()
    want = MODEL + "~7-9~0.9~per-layer"
    WebDriverWait(driver, WAIT_S).until(lambda d: text_of(d, "composed-id") == want,
                                        message="no per-layer id; status " + text_of(driver, "status"))
    composed = want
    check(text_of(driver, "compose-mode") == "per-layer", "mode of a per-layer composition")
    check(text_of(driver, "compose-cached").startswith("no"), "a per-layer composition reported as cached")
    check(Select(driver.find_element(By.ID, "target")).first_selected_option.get_attribute("value") == composed,
          "the composed model is not the inference target")

    # The bundled ankle boot, with the composed model: Enter on its button.
    driver.find_element(By.CSS_SELECTOR, "#gallery button[data-image='ankle-boot.png']").send_keys(Keys.ENTER)
    predicted = wait_text(driver, "predicted-class", "prediction")
    check(predicted == "Ankle boot", "composed model predicted %r; status %r" % (predicted, text_of(driver, "status")))
    check(len(driver.find_elements(By.CSS_SELECTOR, "#infer-result rect.bar")) == 2, "top-k bars of two classes")
    print("composed %s: the ankle boot PNG is %s" % (composed, predicted))

    # A JPEG chosen in the file input, with the full model.
    Select(driver.find_element(By.ID, "target")).select_by_value(MODEL)
    driver.execute_script("document.getElementById('infer-result').replaceChildren()")
    driver.find_element(By.ID, "file").send_keys(os.path.join(root, "examples", "ankle-boot.jpg"))
    predicted = wait_text(driver, "predicted-class", "prediction")
    check(predicted == "Ankle boot", "full model predicted %r for the JPEG" % predicted)
    check(len(driver.find_elements(By.CSS_SELECTOR, "#infer-result rect.bar")) == 5, "top-5 bars")
    print("full model: the ankle boot JPEG is %s" % predicted)

    # Replace Shirt with the model's own module, one calibration epoch: the
    # job's progress, then the served patched model and what was measured.
    Select(driver.find_element(By.ID, "weak")).select_by_value(MODEL)
    Select(driver.find_element(By.ID, "strong")).select_by_value(MODEL)
    Select(driver.find_element(By.ID, "replace-class")).select_by_value("Shirt")
    epochs = driver.find_element(By.ID, "epochs")
    epochs.clear()
    epochs.send_keys("1")
    t0 = time.time()
    driver.find_element(By.ID, "replace-button").click()
    WebDriverWait(driver, JOB_WAIT_S).until(
        lambda d: d.find_elements(By.ID, "patched-model") or "failed" in text_of(d, "job"),
        message="the job never ended: " + text_of(driver, "job"))
    patched = text_of(driver, "patched-model")
    check(patched == MODEL + "-patched-6", "patched model %r; job %r" % (patched, text_of(driver, "job")))
    check(len(driver.find_elements(By.CSS_SELECTOR, "#replace-accuracy tr[data-row]")) == 5, "accuracy rows")
    WebDriverWait(driver, WAIT_S).until(lambda d: d.find_element(By.ID, "model-title").text == "Model " + patched,
                                        message="the patched model was not selected")
    check(not driver.find_element(By.ID, "compose").is_displayed(), "a patched model offered for composition")
    check(not driver.find_element(By.CSS_SELECTOR, "#model .charts").is_displayed(), "module charts of a patched model")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#models tbody tr")) == 2, "the models table lacks it")
    print("replace: %s served after %.1f s; %s" % (patched, time.time() - t0,
                                                   text_of(driver, "replace-accuracy").replace("\n", "; ")))

    # The whole page in the screenshot: the window's frame around the
    # viewport, if any, added to the page's height.
    height = driver.execute_script("window.scrollTo(0, 0); return document.documentElement.scrollHeight"
                                   " + window.outerHeight - window.innerHeight")
    driver.set_window_size(1200, height)
    shot = os.path.join(out_dir, "explorer.png")
    check(driver.save_screenshot(shot), "no screenshot")
    print("screenshot: %s" % shot)

    logs = driver.get_log("browser")
    for entry in logs:
        print("console %s: %s" % (entry["level"], entry["message"]))
    errors = [e for e in logs if e["level"] == "SEVERE"]
    check(not errors, "%d errors in the browser console" % len(errors))


def main():
    binary, root, out_dir = sys.argv[1:4]
    # A copy: the replacement job writes its patched model into the registry.
    work = tempfile.mkdtemp(prefix="moda-ui-")
    registry = os.path.join(work, "models")
    shutil.copytree(os.path.join(root, "models"), registry)
    proc, base = start_server(binary, registry, os.path.join(out_dir, "ui_test_server.log"))
    driver = None
    try:
        driver = browser()
        run(driver, base, root, out_dir)
    finally:
        if driver:
            driver.quit()
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=WAIT_S)
        shutil.rmtree(work, ignore_errors=True)
    if status != 0:
        raise SystemExit("FAIL: moda-server exited %d after SIGTERM" % status)
    print("ui_test: all checks passed")


if __name__ == "__main__":
    main()
