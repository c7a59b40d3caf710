"""The code MLflow runs to build a logged pdm-ray forecaster ("models from code", no pickle).

``mlflow.pyfunc.save_model(python_model=<this file>)`` copies it into the model directory;
loading executes it and then calls ``ForecasterModel.load_context`` with the artifacts.
"""

from mlflow.models import set_model

from pdm_ray.tracking.pyfunc import ForecasterModel

set_model(ForecasterModel())
